"""localcloud's Azure Resource Manager emulator (HTTPS) and its managed-identity endpoint.

In-process: `localcloud.arm.server.start_emulator(settings, runner)`; as a program:
`python -m localcloud.arm --state-dir DIR --port 8443 --identity-port 8444`.
"""
