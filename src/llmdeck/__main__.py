from llmdeck.cli import main

raise SystemExit(main())
