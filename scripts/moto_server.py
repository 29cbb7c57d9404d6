"""moto's server, with IoT certificate ids computed as AWS IoT Core computes them.

    python scripts/moto_server.py -H 127.0.0.1 -p PORT   (what scripts/moto.sh runs)

moto names an IoT certificate by SHA-256 of its PEM text unless
default_user_config["iot"]["use_valid_cert"] is set; then, as AWS does, by SHA-256 of
its DER, the certificate id the registry records (store-aws/tests/it/iot_registry.rs relies
on it). Nothing else changes: the other services' tests run against the same server.
"""
import sys

from moto.core.config import default_user_config
from moto.server import main

default_user_config["iot"]["use_valid_cert"] = True

if __name__ == "__main__":
    sys.exit(main())
