"""The exporters (Redis's and PostgreSQL's) seen from the stack's network, as a caller there would
see them: what one answers a request, and what the Redis exporter sends to a target a /scrape
request names. The requests run as a small Python program inside a service container of the stack
(from the host, traffic goes to 127.0.0.1 only)."""
from __future__ import annotations

import json

from steps.probes import container_exec
from steps.probes.facts import Fact, ProbeError

# Run with python3 -c in a service container: GET argv[1] (over https, verifying the server against the
# container's /run/secrets/ca.crt; HTTP Basic as "prometheus" when
# SCRAPE_PASSWORD is set); with argv[2], a listener on that port meanwhile records every byte sent
# to it, answering each chunk as a Redis error. Prints {"status": ..., "received": ...}.
PROGRAM = r'''
import base64, json, os, socket, ssl, sys, threading, urllib.error, urllib.request
received = []
def accept_all(server):
    while not done.is_set():
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        conn.settimeout(1)
        try:
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                received.append(data)
                conn.sendall(b"-ERR not redis\r\n")
        except OSError:
            pass
        conn.close()
    server.close()
done = threading.Event()
listener = None
if len(sys.argv) > 2:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", int(sys.argv[2])))
    server.listen(8)
    server.settimeout(0.5)
    listener = threading.Thread(target=accept_all, args=(server,))
    listener.start()
request = urllib.request.Request(sys.argv[1])
if os.environ.get("SCRAPE_PASSWORD"):
    token = base64.b64encode(("prometheus:" + os.environ["SCRAPE_PASSWORD"]).encode()).decode()
    request.add_header("Authorization", "Basic " + token)
try:
    # https:// (production mode): the exporter's certificate verified against the stack's CA.
    context = ssl.create_default_context(cafile="/run/secrets/ca.crt") if sys.argv[1].startswith("https:") else None
    with urllib.request.urlopen(request, timeout=20, context=context) as answer:
        status = answer.status
except urllib.error.HTTPError as error:
    status = error.code
except OSError as error:
    status = str(error)
done.set()
if listener:
    listener.join()
print(json.dumps({"status": status, "received": b"".join(received).decode(errors="replace")}))
'''


def request_from(project: str, service: str, url: str, password: str | None = None,
                 listen_port: int | None = None) -> Fact:
    """GET `url` from inside the service's container, signed in as prometheus when `password` is
    given; with `listen_port`, what a listener there received meanwhile. Observed: {"status": the
    HTTP status, "received": the bytes sent to the listener, as text}."""
    command = ["python3", "-c", PROGRAM, url, *([str(listen_port)] if listen_port else [])]
    result = container_exec.exec_in(project, service, command, {"SCRAPE_PASSWORD": password} if password else None)
    output = result.observed.output.strip().splitlines()
    try:
        observed = json.loads(output[-1])
    except (IndexError, ValueError):
        raise ProbeError(f"service {service}: the request to {url} printed no answer: "
                         f"{result.observed.output[-300:]}") from None
    signed_in = " as prometheus" if password else ", no credentials"
    listening = f", a listener on :{listen_port} recording what it is sent" if listen_port else ""
    return Fact(f"GET {url}{signed_in}{listening}", f"{project}/{service} container", observed)
