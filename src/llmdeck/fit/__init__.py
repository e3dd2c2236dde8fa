"""The fit engine: which model and quant this machine runs, with how many layers on the GPU.

Plain Python with no I/O; facts in (`ModelSpec`, GPUs, memory), a `Plan` out.
"""
