#!/usr/bin/python3
# The tutorial's Hello-world WSGI app on flup ("Apache, FastCGI and Python"),
# run as an external FastCGI server on the Unix socket given as argv[1]
# (umask 0, so Apache's www-data workers can connect), plus routes the
# integration tests use, chosen by the first segment of PATH_INFO:
#   /env             JSON object of the WSGI environ's str values
#   /echo            sha256 hex, length and CONTENT_LENGTH of the request body
#   /status          "404 Nobody Here" with a body of its own
#   /redirect-local  200 + Location: /target.txt (or ?to=...): internal redirect
#   /redirect-abs    200 + Location: http://example.com/x: httpd answers 302
#   /cookies         two Set-Cookie headers
#   /stderr?TEXT     writes "stderr-marker-TEXT" to wsgi.errors
#   /slow?s=N        sleeps N seconds, then answers
#   /bytes?n=N       N bytes of 'x'
# Anything else gets the tutorial's Hello world page.
import hashlib
import json
import sys
import time
from urllib.parse import parse_qs

from flup.server.fcgi import WSGIServer

HELLO = b'''<html>
    <head>
        <title>Hello World!</title>
    </head>
    <body>
        <h1>Hello world!</h1>
    </body>
</html>'''


def text(start_response, body, status='200 OK', extra=()):
    if isinstance(body, str):
        body = body.encode('utf-8')
    start_response(status, [('Content-Type', 'text/plain')] + list(extra))
    return [body]


def app(environ, start_response):
    # Route by the first segment, so /env/deeper/path still dumps the env.
    path = environ.get('PATH_INFO', '')
    path = '/' + path.split('/')[1] if path.startswith('/') else path
    query = environ.get('QUERY_STRING', '')
    args = parse_qs(query)

    if path == '/env':
        env = {k: v for k, v in environ.items() if isinstance(v, str)}
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [json.dumps(env, sort_keys=True).encode('ascii')]

    if path == '/echo':
        h = hashlib.sha256()
        n = 0
        inp = environ['wsgi.input']
        while True:
            chunk = inp.read(65536)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        return text(start_response, 'sha256=%s\nlength=%d\ncontent_length=%s\nmethod=%s\n' % (
            h.hexdigest(), n, environ.get('CONTENT_LENGTH', '<unset>'),
            environ.get('REQUEST_METHOD', '')))

    if path == '/status':
        return text(start_response, 'custom status body\n', status='404 Nobody Here')

    if path == '/redirect-local':
        to = args.get('to', ['/target.txt'])[0]
        start_response('200 OK', [('Location', to)])
        return [b'this body must not reach the client\n']

    if path == '/redirect-abs':
        start_response('200 OK', [('Location', 'http://example.com/x')])
        return [b'this body must not reach the client either\n']

    if path == '/cookies':
        return text(start_response, 'cookies set\n',
                    extra=[('Set-Cookie', 'a=1; Path=/'), ('Set-Cookie', 'b=2; Path=/')])

    if path == '/stderr':
        err = environ['wsgi.errors']
        err.write('stderr-marker-%s\n' % query)
        err.flush()
        return text(start_response, 'logged\n')

    if path == '/slow':
        time.sleep(float(args.get('s', ['1'])[0]))
        return text(start_response, 'slept\n')

    if path == '/bytes':
        n = int(args.get('n', ['0'])[0])
        return text(start_response, b'x' * n)

    start_response('200 OK', [('Content-Type', 'text/html')])
    return [HELLO]


if __name__ == '__main__':
    WSGIServer(app, bindAddress=sys.argv[1], umask=0).run()
