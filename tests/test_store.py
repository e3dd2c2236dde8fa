"""The models store: which one the server uses, what it holds, and every finding, on real trees."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import DATA
from ollama_standin import OllamaStandIn
from store_factory import TINY, add_model
from test_cli import llmdeck_command

from llmdeck.fit.synth import synthesize
from llmdeck.store import Mount, Surroundings, check_store, locate, read_store
from llmdeck.store.layout import model_name
from llmdeck.store.locate import ServerProcess, blob_paths_from_modelfile, parse_systemd_unit
from llmdeck.store.specs import spec_from_store

GIB = 1024**3


def where(tmp_path: Path, **changes: object) -> Surroundings:
    base: dict[str, object] = {
        "environ": {},
        "home": tmp_path / "home",
        "platform": "linux",
        "service_home": tmp_path / "service",
    }
    base.update(changes)
    return Surroundings(**base)  # type: ignore[arg-type]


def codes(findings: list) -> list[str]:  # type: ignore[type-arg]
    return [finding.code for finding in findings]


def test_models_are_listed_from_manifests_without_a_server(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "llama3.2:latest")
    add_model(root, "someone/coder:7b")
    add_model(root, "hf.co/org/repo:Q4_K_M")
    contents = read_store(root)
    assert [m.name for m in contents.models] == [
        "hf.co/org/repo:Q4_K_M",
        "llama3.2:latest",
        "someone/coder:7b",
    ]
    llama = next(m for m in contents.models if m.name == "llama3.2:latest")
    manifest = json.loads(llama.manifest.read_text())
    # /api/tags' size: every layer plus the config.
    assert llama.size_bytes == sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]
    assert llama.model_blob is not None and llama.model_blob.read_bytes()[:4] == b"GGUF"
    assert contents.orphan_blobs == () and contents.partial_files == ()
    assert model_name(Path("registry.ollama.ai/library/qwen2.5/14b")) == "qwen2.5:14b"


def test_the_gguf_in_the_store_feeds_the_fit_engine(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "tiny:latest", TINY, "Q8_0")
    spec = spec_from_store(read_store(root).models[0])
    expected = synthesize(TINY, "Q8_0", "tiny")
    assert spec.source == "store"
    assert (spec.layer_bytes, spec.output_bytes, spec.block_count) == (
        expected.layer_bytes,
        expected.output_bytes,
        expected.block_count,
    )


def test_a_projector_layer_in_the_store_counts_as_vision_weights(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "plain:latest")
    add_model(root, "vision:latest", projector=b"p" * 300_000)
    specs = {model.name: spec_from_store(model) for model in read_store(root).models}
    assert specs["plain:latest"].projector_bytes == 0
    assert specs["vision:latest"].projector_bytes == 300_000
    assert specs["vision:latest"].file_bytes == specs["plain:latest"].file_bytes + 300_000


def test_broken_and_leftover_files_are_found(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "good:latest")
    add_model(root, "broken:latest")
    broken = next(m for m in read_store(root).models if m.name == "broken:latest")
    assert broken.model_blob is not None
    broken.model_blob.unlink()
    (root / "blobs" / ("sha256-" + "a" * 64)).write_bytes(b"x" * 5000)  # an orphan
    (root / "blobs" / ("sha256-" + "b" * 64 + "-partial")).write_bytes(b"y" * 3000)
    decision = locate(where(tmp_path, environ={"OLLAMA_MODELS": str(root)}))
    findings = check_store(decision, read_store(root), where(tmp_path), mounts=[])
    assert findings[0].level == "error" and findings[0].code == "missing-blob"
    assert "broken:latest" in findings[0].message and "ollama pull broken:latest" in findings[0].fix
    assert {"orphan-blob", "partial-download"} <= set(codes(findings))


def test_a_store_the_server_is_told_to_use_but_missing_is_an_error(tmp_path: Path) -> None:
    unit = parse_systemd_unit(
        Path("/etc/systemd/system/ollama.service.d/override.conf"),
        '[Service]\nEnvironment="OLLAMA_MODELS=/data/missing" "OLLAMA_HOST=0.0.0.0"\nUser=ollama\n',
    )
    surroundings = where(tmp_path, systemd_units=[unit])
    decision = locate(surroundings)
    assert (decision.path, decision.source, decision.server_user) == (
        Path("/data/missing"),
        "systemd",
        "ollama",
    )
    findings = check_store(decision, read_store(decision.path), surroundings, mounts=[])
    assert codes(findings)[0] == "missing-dir" and findings[0].level == "error"
    # The default store not existing yet is just a fresh install.
    fresh = locate(where(tmp_path))
    assert fresh.source == "default"
    assert check_store(fresh, read_store(fresh.path), where(tmp_path), mounts=[])[0].level == "info"


def test_a_store_the_server_user_cannot_write(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "m:latest")
    os.chmod(root, 0o755)
    nobody = ServerProcess(
        pid=4242, user="nobody", environ={"OLLAMA_MODELS": str(root), "HOME": "/nonexistent"}
    )
    surroundings = where(tmp_path, server_processes=[nobody])
    decision = locate(surroundings)
    assert decision.source == "server-process" and decision.server_user == "nobody"
    assert "not-writable" in codes(check_store(decision, read_store(root), surroundings, mounts=[]))
    for folder in (root, root / "blobs", root / "manifests"):
        os.chmod(folder, 0o777)
    assert "not-writable" not in codes(check_store(decision, read_store(root), surroundings, mounts=[]))


@pytest.mark.parametrize("name", ["OLLAMA_MODELS_DIR", "OLLAMA_MODEL", "OLLAMA_MODELS_PATH", "ollama_models"])
def test_a_misspelled_variable_is_named(tmp_path: Path, name: str) -> None:
    surroundings = where(tmp_path, environ={name: "/data/models"})
    findings = check_store(locate(surroundings), read_store(tmp_path / "x"), surroundings, mounts=[])
    [misspelled] = [f for f in findings if f.code == "misspelled-env"]
    assert name in misspelled.message and misspelled.fix == "Rename it: OLLAMA_MODELS=/data/models"
    fine = where(tmp_path, environ={name: "/data/models", "OLLAMA_MODELS": "/data/models"})
    assert "misspelled-env" not in codes(
        check_store(locate(fine), read_store(tmp_path / "x"), fine, mounts=[])
    )


def test_ollama_models_set_only_for_llmdeck(tmp_path: Path) -> None:
    served = tmp_path / "served"
    add_model(served, "m:latest")
    blob = read_store(served).models[0].model_blob
    assert blob is not None
    surroundings = where(
        tmp_path, environ={"OLLAMA_MODELS": str(tmp_path / "mine")}, served_blob_paths=[blob]
    )
    decision = locate(surroundings)
    assert (decision.path, decision.source) == (served, "server")
    findings = check_store(decision, read_store(served), surroundings, mounts=[])
    [client_only] = [f for f in findings if f.code == "client-only-env"]
    assert str(served) in client_only.message


def test_two_stores_with_models(tmp_path: Path) -> None:
    add_model(tmp_path / "home" / ".ollama" / "models", "a:latest")
    add_model(tmp_path / "service" / ".ollama" / "models", "b:latest")
    surroundings = where(tmp_path)
    decision = locate(surroundings)
    assert "two-stores" in codes(check_store(decision, read_store(decision.path), surroundings, mounts=[]))


def test_disk_space_findings(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "m:latest")
    surroundings = where(tmp_path, environ={"OLLAMA_MODELS": str(root)})
    decision = locate(surroundings)
    huge = 10**15  # a recommended pull bigger than any disk here
    findings = check_store(decision, read_store(root), surroundings, mounts=[], recommended_pull_bytes=huge)
    assert "low-disk" in codes(findings)
    mounts = [Mount(Path("/"), 100 * GIB, 5 * GIB), Mount(Path("/data"), 2000 * GIB, 1500 * GIB)]
    [system] = [
        f
        for f in check_store(decision, read_store(root), surroundings, mounts=mounts)
        if f.code == "system-drive"
    ]
    assert "/data" in system.message and system.level == "info"


def test_blob_paths_from_a_modelfile() -> None:
    modelfile = "# Modelfile\nFROM /var/lib/ollama/blobs/sha256-" + "c" * 64 + "\nTEMPLATE {{ .Prompt }}\n"
    assert blob_paths_from_modelfile(modelfile) == [Path("/var/lib/ollama/blobs/sha256-" + "c" * 64)]
    assert blob_paths_from_modelfile("FROM llama3.2\n") == []


def doctor(*args: str, host: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [
        *llmdeck_command(),
        "--hardware",
        str(DATA / "workstation-rtx4090.json"),
        "--host",
        host,
        "doctor",
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_doctor_json_with_a_server_that_says_where_its_store_is(
    tmp_path: Path, standin: OllamaStandIn
) -> None:
    root = tmp_path / "models"
    for name in standin.models:
        add_model(root, name)
    standin.store_root = str(root)
    result = doctor("--json", host=standin.url)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= {"versions", "host", "hardware", "store", "findings"}
    assert report["host"]["answered"] and report["versions"]["ollama"] == "0.12.10"
    store = report["store"]
    assert (store["path"], store["source"], store["exists"], store["writable"]) == (
        str(root),
        "server",
        True,
        True,
    )
    assert sorted(store["models"]) == sorted(standin.models)
    assert store["free_bytes"] > 0
    assert all(set(f) == {"level", "code", "message", "fix"} for f in report["findings"])
    assert not [f for f in report["findings"] if f["level"] == "error"]


def test_doctor_exits_1_on_an_error_and_says_why(tmp_path: Path, standin: OllamaStandIn) -> None:
    standin.store_root = str(tmp_path / "gone")
    result = doctor(host=standin.url)
    assert result.returncode == 1
    assert "ERROR   missing-dir" in result.stdout
    assert str(tmp_path / "gone") in result.stdout


def test_fit_reads_the_store_when_the_server_is_down(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "tiny:latest")
    recorded = str(DATA / "workstation-rtx4090.json")
    command = [*llmdeck_command(), "--hardware", recorded, "--host", "127.0.0.1:9", "fit", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "OLLAMA_MODELS": str(root)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert (row["model"], row["source"], row["verdict"]) == ("tiny:latest", "store", "gpu")


def test_doctor_reads_the_real_environment_without_a_server(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "m:latest")
    result = doctor("--json", host="127.0.0.1:9", env={"OLLAMA_MODELS_DIR": str(root)})
    report = json.loads(result.stdout)
    assert report["host"]["answered"] is False
    [misspelled] = [f for f in report["findings"] if f["code"] == "misspelled-env"]
    assert misspelled["fix"] == f"Rename it: OLLAMA_MODELS={root}"
    # With the variable spelled right, that store is the one llmdeck reads.
    fixed = json.loads(doctor("--json", host="127.0.0.1:9", env={"OLLAMA_MODELS": str(root)}).stdout)
    assert (fixed["store"]["path"], fixed["store"]["source"]) == (str(root), "environment")
    assert fixed["store"]["models"] == ["m:latest"]
    assert "misspelled-env" not in [f["code"] for f in fixed["findings"]]


def test_a_systemd_drop_in_overrides_the_unit_as_systemd_does() -> None:
    unit = parse_systemd_unit(Path("ollama.service"), 'Environment="OLLAMA_MODELS=/old"\nUser=ollama\n')
    override = parse_systemd_unit(Path("override.conf"), 'Environment="OLLAMA_MODELS=/new"\n', unit)
    assert (override.environment["OLLAMA_MODELS"], override.user) == ("/new", "ollama")
    cleared = parse_systemd_unit(Path("reset.conf"), "Environment=\n", override)
    assert "OLLAMA_MODELS" not in cleared.environment


def test_a_server_running_as_ollama_uses_the_service_store_even_unread(tmp_path: Path) -> None:
    hidden = ServerProcess(pid=7, user="ollama", environ=None)
    decision = locate(where(tmp_path, server_processes=[hidden], environ={"OLLAMA_MODELS": "/mine"}))
    assert decision.path == tmp_path / "service" / ".ollama" / "models"
    assert decision.source == "server-process"


def test_chunked_partial_files_count_as_one_download(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "m:latest")
    digest = "sha256-" + "d" * 64
    for suffix in ("-partial", "-partial-0", "-partial-1"):
        (root / "blobs" / (digest + suffix)).write_bytes(b"p")
    [partial] = [f for f in check_store(locate(where(tmp_path)), read_store(root), where(tmp_path), mounts=[])
                 if f.code == "partial-download"]  # fmt: skip
    assert partial.message.startswith("1 unfinished downloads")


def test_a_variable_holding_a_model_name_is_not_a_misspelled_store(tmp_path: Path) -> None:
    surroundings = where(tmp_path, environ={"OLLAMA_MODEL": "llama3"})
    findings = check_store(locate(surroundings), read_store(tmp_path / "x"), surroundings, mounts=[])
    assert "misspelled-env" not in codes(findings)


def test_old_blob_names_and_stray_files_are_understood(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "m:latest")
    model = read_store(root).models[0]
    assert model.model_blob is not None
    # Before March 2024 Ollama named blobs `sha256:<hex>`.
    model.model_blob.rename(root / "blobs" / model.model_blob.name.replace("sha256-", "sha256:"))
    (root / "manifests" / ".DS_Store").write_bytes(b"\0")
    (root / "manifests" / "registry.ollama.ai" / "README").write_text("not a manifest")
    contents = read_store(root)
    assert [m.name for m in contents.models] == ["m:latest"]
    assert contents.models[0].missing_blobs == ()
    assert contents.orphan_blobs == () and contents.unreadable == ()


def test_a_store_whose_blobs_folder_the_server_cannot_write(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, "m:latest")
    os.chmod(root, 0o777)
    os.chmod(root / "manifests", 0o777)
    os.chmod(root / "blobs", 0o755)  # owned by root: nobody cannot add a blob
    server = ServerProcess(pid=9, user="nobody", environ={"OLLAMA_MODELS": str(root)})
    surroundings = where(tmp_path, server_processes=[server])
    assert "not-writable" in codes(
        check_store(locate(surroundings), read_store(root), surroundings, mounts=[])
    )
