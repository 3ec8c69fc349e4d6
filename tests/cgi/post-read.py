#!/usr/bin/python3
# Reads the whole request body and describes it.
import hashlib, os, sys
n = int(os.environ.get("CONTENT_LENGTH") or "0")
data = b""
while len(data) < n:
    chunk = sys.stdin.buffer.read(n - len(data))
    if not chunk:
        break
    data += chunk
sys.stdout.write("Content-Type: text/plain\n\n")
sys.stdout.write("method=%s\ncontent_length=%s\nread=%d\nsha256=%s\n" % (
    os.environ.get("REQUEST_METHOD"), os.environ.get("CONTENT_LENGTH", "<unset>"),
    len(data), hashlib.sha256(data).hexdigest()))
