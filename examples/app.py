#!/usr/bin/python3
# The tutorial's Hello-world WSGI app (Ferry Boender, "Apache, FastCGI and
# Python"), on flup. With a socket path argument it listens there (an external
# server); without, on the socket it was given as stdin (static/dynamic mode).
import sys

from flup.server.fcgi import WSGIServer


def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/html')])
    return [b'''<html>
    <head>
        <title>Hello World!</title>
    </head>
    <body>
        <h1>Hello world!</h1>
    </body>
</html>''']


if __name__ == "__main__":
    if len(sys.argv) > 1:
        WSGIServer(app, bindAddress=sys.argv[1], umask=0).run()
    else:
        WSGIServer(app).run()
