"""Actuators behind the `Actuator` port (see `slo_operator.types`).

`slo_operator.actuate.kubernetes.KubernetesActuator` steers a Deployment (the operator);
the local demo's process actuator lives beside it. Import the one you need: this package does
not import any client library itself.
"""
