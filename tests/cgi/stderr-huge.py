#!/usr/bin/python3
# About 1 MiB on stderr, half before the headers, half after the body.
import os, sys
line = "EQUIV-HUGE " + "e" * 1000 + "\n"
for _ in range(512):
    sys.stderr.write(line)
sys.stderr.flush()
sys.stdout.write("Content-Type: text/plain\n\nbody between two floods\n")
sys.stdout.flush()
for _ in range(512):
    sys.stderr.write(line)
sys.stderr.write("EQUIV-STDERR huge done %s\n" % os.environ.get("SCRIPT_NAME", ""))
