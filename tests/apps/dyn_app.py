#!/usr/bin/python3
# A dynamic-mode FastCGI app (tutorial, "Dynamic mode"): flup's
# WSGIServer(app).run() with no bindAddress, so flup serves the listening
# socket the process manager hands over as fd 0. The test may rewrite the
# VERSION line (-autoUpdate). Routes by PATH_INFO:
#   /slow?ms=N  sleeps N milliseconds first
#   /env?name=X the value of environment variable X ("<unset>" if none)
# Anything else: "dyn_app VERSION pid=N ppid=M\n".
import os
import time
from urllib.parse import parse_qs

from flup.server.fcgi import WSGIServer

VERSION = 'v1'


def app(environ, start_response):
    if environ.get('PATH_INFO', '') == '/slow':
        q = parse_qs(environ.get('QUERY_STRING', ''))
        time.sleep(int(q.get('ms', ['1000'])[0]) / 1000.0)
    if environ.get('PATH_INFO', '') == '/env':
        name = parse_qs(environ.get('QUERY_STRING', '')).get('name', [''])[0]
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [('%s\n' % os.environ.get(name, '<unset>')).encode()]
    body = 'dyn_app %s pid=%d ppid=%d\n' % (VERSION, os.getpid(), os.getppid())
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode()]


if __name__ == '__main__':
    WSGIServer(app).run()
