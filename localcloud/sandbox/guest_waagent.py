#!/usr/bin/python3
"""localcloud's stand-in for the Azure Linux agent inside a sandbox VM (installed as waagent).

Only `waagent -deprovision[+user] [-force]` is supported: it undoes what provisioning did so the
next boot of a copy of this OS layer provisions again with the new VM's user and keys.
Runs with the guest's own python3 and the standard library only.
"""

import glob
import os
import shutil
import subprocess
import sys

PROVISIONED_MARKER = "/var/lib/waagent/provisioned"
PROVISIONED_USER = "/var/lib/waagent/provisioned-user"
SUDOERS_FILE = "/etc/sudoers.d/90-cloud-init-users"


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def deprovision(with_user: bool) -> None:
    if with_user and os.path.exists(PROVISIONED_USER):
        with open(PROVISIONED_USER) as f:
            user = f.read().strip()
        if user and user != "root":
            # -r removes the home; the user may still have a session (this very command)
            subprocess.run(["userdel", "-f", "-r", user], check=False, stderr=subprocess.DEVNULL)
        remove(SUDOERS_FILE)
    for path in glob.glob("/etc/ssh/ssh_host_*"):
        remove(path)
    for path in [*glob.glob("/var/lib/cloud/instance*"), "/var/lib/cloud/data"]:
        remove(path)
    for path in (PROVISIONED_MARKER, PROVISIONED_USER, "/root/.bash_history"):
        remove(path)
    print("WARNING! The waagent service will be stopped. Deprovisioning done.")


def main(argv: list[str]) -> int:
    args = set(argv[1:])
    if "-deprovision+user" in args:
        deprovision(with_user=True)
    elif "-deprovision" in args:
        deprovision(with_user=False)
    elif "-version" in args or "--version" in args:
        print("WALinuxAgent-localcloud")
    else:
        print("usage: waagent -deprovision[+user] [-force]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
