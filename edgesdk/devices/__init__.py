"""Devices: the inventory (devices.yaml), transports (SSH, local), artifact upload, the on-device runner
and the profile/deploy API built from them. Nothing here imports paramiko or onnxruntime at import time."""
