#!/usr/bin/python3
# Answers without reading the request body. It waits (without reading) until
# the gateway has put some of the body into its stdin pipe, all of it when it
# is small: mod_cgi and fcgiwrap both write the body before they read the
# answer, and fcgiwrap reports a script already gone by then as its own 502.
import fcntl, os, struct, sys, termios, time

n = int(os.environ.get("CONTENT_LENGTH") or "0")
want = min(n, 4096)
deadline = time.monotonic() + 5
while want and time.monotonic() < deadline:
    ready = struct.unpack("i", fcntl.ioctl(0, termios.FIONREAD, b"\0\0\0\0"))[0]
    if ready >= want:
        break
    time.sleep(0.005)
sys.stdout.write("Content-Type: text/plain\n\nignored a body of %s bytes\n" % os.environ.get("CONTENT_LENGTH", "<unset>"))
