"""The container's healthcheck: GET /health on the service itself; one line out, exit 0 on 200."""
import json
import os
import sys
import urllib.error
import urllib.request

from servicekit import tls


def main() -> int:
    try:
        port = os.environ.get("CONFIG_PORT", "8090")
        transport = tls.current()  # HTTPS in production mode, verifying the certificate
        with urllib.request.urlopen(f"{transport.http_scheme}://127.0.0.1:{port}/health", timeout=3,
                                    context=transport.client_context()) as response:
            print(f"{response.status} {json.load(response).get('status')}")
            return 0
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        try:
            answer = json.loads(body)
            body = f"{answer.get('status')}: PostgreSQL {answer['postgres'].get('error') or answer['postgres']}"
        except (ValueError, TypeError, KeyError, AttributeError):
            pass
        print(f"{error.code} {body}"[:300].replace("\n", " "))
    except (OSError, ValueError) as error:
        print(f"no answer: {error}"[:300].replace("\n", " "))
    except Exception as error:  # noqa: BLE001 - a healthcheck prints one line, never a traceback
        print(f"unreadable answer: {type(error).__name__}: {error}"[:300].replace("\n", " "))
    return 1


if __name__ == "__main__":
    sys.exit(main())
