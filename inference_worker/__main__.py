"""`python -m inference_worker`: the same as `latencyslo worker`."""

from inference_worker.cli import worker

if __name__ == "__main__":
    worker(prog_name="python -m inference_worker")
