"""Reads one of the system's topics with confluent-kafka and validates every event.

Someone else's consumer must be able to rely on the JSON Schemas in docs/schemas/: this reads
`--count` messages from `--topic` and checks each against `--schema`, and that the message key is
the event's `--key-field` (alerts are keyed by userId, market data by instrument). Exit status 0
only if all pass.
"""

import argparse
import json
import sys
import time

import jsonschema
from confluent_kafka import Consumer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--key-field", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    with open(args.schema, encoding="utf-8") as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": f"external-validator-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    deadline = time.monotonic() + args.timeout
    seen, failures = 0, []
    try:
        while seen < args.count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                print(f"consumer error: {message.error()}", file=sys.stderr)
                continue
            seen += 1
            try:
                event = json.loads(message.value())
            except ValueError as e:
                failures.append(f"offset {message.offset()}: not JSON: {e}")
                continue
            for error in validator.iter_errors(event):
                failures.append(f"offset {message.offset()}: {error.json_path}: {error.message}")
            key = (message.key() or b"").decode("utf-8", "replace")
            if key != event.get(args.key_field):
                failures.append(
                    f"offset {message.offset()}: key {key!r} is not the {args.key_field}"
                )
    finally:
        consumer.close()

    for failure in failures:
        print(failure, file=sys.stderr)
    if seen < args.count:
        print(f"only {seen} of {args.count} events arrived", file=sys.stderr)
        return 1
    print(f"validated {seen} events against {args.schema}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
