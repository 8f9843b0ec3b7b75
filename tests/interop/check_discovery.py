#!/usr/bin/env python3
"""Finds Release Ledger's services as a generic gRPC tool would: reflection, health, Flight.

Nothing here is compiled from the repository's .proto files: every message type comes from
the server's reflection service, through grpcio-reflection's client, which speaks
`grpc.reflection.v1alpha` (what grpcurl 1.8, Postman and grpcio-reflection use).

  1. reflection (v1alpha): the service list holds Ledger, Query, Arrow Flight, health and
     reflection; the Flight service's descriptor resolves (with its imports) and lists DoGet,
     GetFlightInfo, ListFlights;
  2. health (grpc.health.v1): Ledger, Query and arrow.flight.protocol.FlightService are
     SERVING (the server is asked until the projections have loaded);
  3. a dynamic GetFlightInfo call, its request and response types built from reflection
     alone, with a PATH descriptor [tenant, "entries"]: the row count is the log's size, the
     ticket pins the range (proves the reflected Flight schema matches the server's wire);
  4. pyarrow.flight, a Flight client of its own: GetFlightInfo with the PATH descriptor, then
     DoGet of the ticket it returned, gets the rows; a bad PATH is INVALID_ARGUMENT naming
     the tables.

Prints one JSON summary line; exits 1 with "check_discovery: FAIL: ..." on the first mismatch.

Usage: check_discovery.py --server HOST:PORT --tenant NAME --entries N
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import grpc

import ledger_auth
import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

FLIGHT = "arrow.flight.protocol.FlightService"
EXPECTED_SERVICES = {
    "release_ledger.v1.Ledger",
    "release_ledger.v1.Query",
    FLIGHT,
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
}
TIMEOUT = 30.0


class Mismatch(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Mismatch(message)


def reflection(channel: grpc.Channel) -> tuple[list[str], descriptor_pool.DescriptorPool]:
    database = ProtoReflectionDescriptorDatabase(channel)
    services = list(database.get_services())
    missing = EXPECTED_SERVICES - set(services)
    expect(not missing, f"reflection (v1alpha) does not list {sorted(missing)}; it lists {services}")
    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName(FLIGHT)
    methods = {m.name for m in service.methods}
    for name in ("DoGet", "GetFlightInfo", "ListFlights", "GetSchema"):
        expect(name in methods, f"the reflected {FLIGHT} has no {name}: {sorted(methods)}")
    return services, pool


def health(channel: grpc.Channel) -> dict[str, str]:
    stub = health_pb2_grpc.HealthStub(channel)
    statuses = {}
    deadline = time.monotonic() + TIMEOUT
    for service in ("release_ledger.v1.Ledger", "release_ledger.v1.Query", FLIGHT):
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT).status
            except grpc.RpcError as e:
                raise Mismatch(f"health of {service}: {e.code().name}: {e.details()}") from None
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            if name == "SERVING" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        expect(name == "SERVING", f"health of {service} is {name}")
        statuses[service] = name
    return statuses


def dynamic_get_flight_info(channel: grpc.Channel, pool, tenant: str) -> dict:
    """GetFlightInfo with request and response classes made from the reflected descriptors."""
    method = pool.FindServiceByName(FLIGHT).FindMethodByName("GetFlightInfo")
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    path_type = method.input_type.enum_types_by_name["DescriptorType"].values_by_name["PATH"].number
    request = request_class(type=path_type, path=[tenant, "entries"])
    call = channel.unary_unary(
        f"/{FLIGHT}/GetFlightInfo",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    try:
        info = call(request, timeout=TIMEOUT)
    except grpc.RpcError as e:
        raise Mismatch(f"dynamic GetFlightInfo: {e.code().name}: {e.details()}") from None
    expect(len(info.endpoint) == 1, f"dynamic GetFlightInfo: {len(info.endpoint)} endpoints")
    ticket = json.loads(info.endpoint[0].ticket.ticket)
    return {"totalRecords": info.total_records, "ticket": ticket, "descriptorPath": list(info.flight_descriptor.path)}


def pyarrow_flight(server: str, tenant: str) -> dict:
    client = flight.FlightClient(f"grpc://{server}")
    options = flight.FlightCallOptions(headers=ledger_auth.flight_headers())
    info = client.get_flight_info(flight.FlightDescriptor.for_path(tenant, "entries"), options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    try:
        client.get_flight_info(flight.FlightDescriptor.for_path(tenant, "nope"), options)
        raise Mismatch("a PATH naming no table was accepted")
    except pa.ArrowInvalid as e:
        # pyarrow raises INVALID_ARGUMENT as ArrowInvalid; the message must name the tables.
        bad_path = str(e)
    except (flight.FlightError, pa.ArrowException) as e:
        raise Mismatch(f"a bad PATH gave {type(e).__name__}, not INVALID_ARGUMENT: {e}") from None
    expect("entries" in bad_path and "releases" in bad_path, f"the bad PATH error does not name the tables: {bad_path}")
    seqs = table.column("seq").to_pylist()
    return {"rows": table.num_rows, "seqs": seqs, "totalRecords": info.total_records, "badPath": bad_path.splitlines()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True, help="gRPC address, host:port")
    parser.add_argument("--tenant", required=True, help="a tenant holding --entries entries")
    parser.add_argument("--entries", required=True, type=int, help="the tenant's log size")
    args = parser.parse_args()
    try:
        with ledger_auth.channel(args.server) as channel:
            grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
            services, pool = reflection(channel)
            statuses = health(channel)
            dynamic = dynamic_get_flight_info(channel, pool, args.tenant)
        expect(dynamic["totalRecords"] == args.entries, f"dynamic GetFlightInfo counts {dynamic['totalRecords']} rows")
        expect(
            dynamic["ticket"] == {"tenant": args.tenant, "table": "entries", "from": 0, "to": args.entries},
            f"dynamic GetFlightInfo ticket {dynamic['ticket']}",
        )
        pa_flight = pyarrow_flight(args.server, args.tenant)
        expect(pa_flight["rows"] == args.entries, f"pyarrow.flight read {pa_flight['rows']} rows")
        expect(pa_flight["seqs"] == list(range(args.entries)), f"pyarrow.flight seqs {pa_flight['seqs']}")
    except Mismatch as e:
        print(f"check_discovery: FAIL: {e}", file=sys.stderr)
        return 1
    except grpc.FutureTimeoutError:
        print(f"check_discovery: FAIL: no gRPC connection to {args.server}", file=sys.stderr)
        return 1
    print(json.dumps({"ok": True, "services": sorted(services), "health": statuses, "dynamic": dynamic, "pyarrowFlight": pa_flight}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
