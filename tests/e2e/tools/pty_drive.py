"""Runs a command on a pseudo-terminal and answers its prompts, like a person would.

Usage: pty_drive.py '<json: argv>' '<json: [[expected text, answer], ...]>'
Prints everything the command wrote to the terminal and exits with its status.
"""
import json
import os
import pty
import select
import sys
import time

argv = json.loads(sys.argv[1])
steps = json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)

seen = b""


def read_some(wait):
    global seen
    ready, _, _ = select.select([fd], [], [], wait)
    if not ready:
        return True
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        return False
    if not chunk:
        return False
    seen += chunk
    return True


position = 0
for expected, answer in steps:
    deadline = time.time() + 30
    while expected.encode() not in seen[position:]:
        if time.time() > deadline or not read_some(0.2):
            sys.stdout.write(seen.decode(errors="replace"))
            sys.exit("pty_drive: never saw %r" % expected)
    position = seen.index(expected.encode(), position) + len(expected)
    time.sleep(0.05)
    os.write(fd, (answer + "\n").encode())
while read_some(5):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
