"""The container's healthcheck: GET /health on the registry itself; one line out, exit 0 on 200."""
import json
import sys
import urllib.error
import urllib.request

from servicekit import tls


def main() -> int:
    try:
        transport = tls.current()  # HTTPS in production mode, verifying the certificate
        with urllib.request.urlopen(f"{transport.http_scheme}://127.0.0.1:8080/health", timeout=3,
                                    context=transport.client_context()) as response:
            print(f"{response.status} {json.load(response).get('status')}")
            return 0
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        try:
            body = json.loads(body).get("reason") or body
        except ValueError:
            pass
        print(f"{error.code} {body}"[:300])
    except (OSError, ValueError) as error:
        print(f"no answer: {error}"[:300])
    return 1


if __name__ == "__main__":
    sys.exit(main())
