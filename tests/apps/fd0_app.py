#!/usr/bin/python3
# A static-mode FastCGI app (FastCgiServer): flup's WSGIServer(app).run()
# with no bindAddress, so flup serves the listening socket the process
# manager hands over as fd 0 (the FastCGI convention libfcgi and php-cgi
# follow too). Routes, by the first segment of PATH_INFO:
#   /info        one flat JSON object (string values): what this process saw
#                when it started (pid, parent, process group, ids, nice, cwd,
#                argv, the exact execve environment, open fds, what fd 0 is)
#                plus os.environ as "env.NAME" keys
#   /slow?ms=N   sleeps N milliseconds, then answers "slow ok\n"
# Anything else: "hello from fd0_app pid=N\n".
#
# The facts are gathered before anything else is imported, so that the
# open-fd list shows what the process manager left open, not Python's own.
import os
import sys


def _startup_facts():
    f = {}
    f['pid'] = str(os.getpid())
    f['ppid'] = str(os.getppid())
    f['pgid'] = str(os.getpgid(0))
    f['sid'] = str(os.getsid(0))
    f['uid'] = str(os.getuid())
    f['euid'] = str(os.geteuid())
    f['gid'] = str(os.getgid())
    f['egid'] = str(os.getegid())
    f['nice'] = str(os.nice(0))
    f['cwd'] = os.getcwd()
    f['argv0'] = sys.argv[0]
    f['argc'] = str(len(sys.argv))
    # The environment exactly as execve() gave it, one NAME=value a line
    # (os.environ may hold more: Python sets LC_CTYPE when it coerces the C
    # locale).
    with open('/proc/self/environ', 'rb') as fh:
        raw = fh.read()
    entries = [e.decode('utf-8', 'replace') for e in raw.split(b'\0') if e]
    f['environ'] = '\n'.join(sorted(entries))
    # Open descriptors above stderr (fstat does not open anything).
    extra = []
    for fd in range(3, 1024):
        try:
            os.fstat(fd)
        except OSError:
            continue
        extra.append(str(fd))
    f['extra_fds'] = ','.join(extra)
    return f


FACTS = _startup_facts()

import json  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402
import time  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402


def _fd0_facts():
    f = {'fd0_is_socket': 'no', 'fd0_listening': 'no', 'fd0_family': '', 'fd0_name': ''}
    try:
        st = os.fstat(0)
    except OSError as e:
        f['fd0_error'] = str(e)
        return f
    if not stat.S_ISSOCK(st.st_mode):
        return f
    f['fd0_is_socket'] = 'yes'
    s = socket.socket(fileno=os.dup(0))  # family and type detected from the fd
    try:
        f['fd0_family'] = s.family.name
        f['fd0_type'] = s.type.name
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            f['fd0_listening'] = 'yes'
        name = s.getsockname()
        if isinstance(name, tuple):
            f['fd0_name'] = '%s:%d' % (name[0], name[1])
        else:
            f['fd0_name'] = name if isinstance(name, str) else name.decode('utf-8', 'replace')
    finally:
        s.close()
    return f


FACTS.update(_fd0_facts())

from flup.server.fcgi import WSGIServer  # noqa: E402


def app(environ, start_response):
    path = environ.get('PATH_INFO', '')
    path = '/' + path.split('/')[1] if path.startswith('/') else path
    args = parse_qs(environ.get('QUERY_STRING', ''))

    if path == '/info':
        info = dict(FACTS)
        for k, v in os.environ.items():
            info['env.' + k] = v
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [json.dumps(info, sort_keys=True).encode('ascii')]

    if path == '/slow':
        time.sleep(int(args.get('ms', ['100'])[0]) / 1000.0)
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'slow ok\n']

    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('hello from fd0_app pid=%d\n' % os.getpid()).encode('ascii')]


if __name__ == '__main__':
    WSGIServer(app).run()
