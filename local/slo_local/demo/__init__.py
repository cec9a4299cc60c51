"""`latencyslo demo`: the operator's control loop on local worker processes (docs/demo.md).

`scenario` (what a run is), `run` (the run itself), `timeline` (recording, scores, files),
`simulate` (the same scenario in the simulator), `view` (terminal), `cli` (the command).
"""
