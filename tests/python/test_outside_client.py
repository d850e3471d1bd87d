"""The v1 API as an outside client sees it: a Python client generated from proto/.

Checks what any team calling IDIC from another language relies on: health and
reflection on the server, a customer created and read back, field-level errors for
bad input, and bearer-token authentication with per-RPC scopes.
"""

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from idic.common.v1 import common_pb2
from idic.identification.v1 import identification_pb2, identification_pb2_grpc

SERVICES = {
    "idic.identification.v1.IdentificationService",
    "idic.segmentation.v1.SegmentationService",
    "idic.interaction.v1.InteractionService",
    "idic.customization.v1.CustomizationService",
}
TIMEOUT_S = 10


@pytest.fixture
def identification(channel):
    return identification_pb2_grpc.IdentificationServiceStub(channel)


def person(email: str) -> identification_pb2.CreateCustomerRequest:
    """A request creating Ada Lovelace with one email address."""
    return identification_pb2.CreateCustomerRequest(
        customer=identification_pb2.Customer(
            kind=identification_pb2.CUSTOMER_KIND_PERSON,
            given_name="Ada",
            family_name="Lovelace",
            identifiers=[common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_EMAIL, value=email)],
        ),
        request_id=str(uuid.uuid4()),
    )


def unique_email() -> str:
    return f"ada.{uuid.uuid4().hex[:8]}@analytical-engine.co.uk"


def test_every_service_reports_serving(channel):
    health = health_pb2_grpc.HealthStub(channel)
    statuses = {
        service: health_pb2.HealthCheckResponse.ServingStatus.Name(
            health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_S).status
        )
        for service in sorted(SERVICES)
    }
    assert statuses == {service: "SERVING" for service in SERVICES}


def test_reflection_lists_the_four_services(channel):
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = list(
        reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT_S
        )
    )
    assert len(responses) == 1
    listed = {service.name for service in responses[0].list_services_response.service}
    assert {name for name in listed if name.startswith("idic.")} == SERVICES
    assert "grpc.health.v1.Health" in listed


def test_customer_round_trip(identification, admin_auth):
    email = unique_email()
    mixed_case = email.replace("ada.", "Ada.").replace("analytical-engine", "Analytical-Engine")

    created = identification.CreateCustomer(person(mixed_case), metadata=admin_auth, timeout=TIMEOUT_S)
    assert created.name.startswith("customers/")
    uuid.UUID(created.name.removeprefix("customers/"))

    got = identification.GetCustomer(
        identification_pb2.GetCustomerRequest(name=created.name), metadata=admin_auth, timeout=TIMEOUT_S
    )
    assert got.name == created.name
    assert got.kind == identification_pb2.CUSTOMER_KIND_PERSON
    assert got.state == identification_pb2.CUSTOMER_STATE_ACTIVE
    assert got.given_name == "Ada"
    assert got.family_name == "Lovelace"
    assert got.display_name == "Ada Lovelace"
    assert not got.pii_masked
    assert [(i.kind, i.value) for i in got.identifiers] == [(common_pb2.IDENTIFIER_KIND_EMAIL, email)]
    assert got.HasField("create_time")


def test_malformed_email_names_the_field(identification, admin_auth):
    with pytest.raises(grpc.RpcError) as raised:
        identification.CreateCustomer(person("bob@@example"), metadata=admin_auth, timeout=TIMEOUT_S)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

    status = rpc_status.from_call(error)
    assert status is not None, "no grpc-status-details-bin trailer"
    violations = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(bad_request.field_violations)
    assert [v.field for v in violations] == ["customer.identifiers[0].value"]
    assert violations[0].description


def test_missing_token_is_unauthenticated(identification):
    with pytest.raises(grpc.RpcError) as raised:
        identification.CreateCustomer(person(unique_email()), timeout=TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_missing_scope_is_permission_denied(identification, reader_auth):
    # The reader's token is valid: a read it is scoped for gets past authentication.
    with pytest.raises(grpc.RpcError) as raised:
        identification.GetCustomer(
            identification_pb2.GetCustomerRequest(name=f"customers/{uuid.uuid4()}"),
            metadata=reader_auth, timeout=TIMEOUT_S,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    # CreateCustomer needs profiles.write, which the reader lacks.
    with pytest.raises(grpc.RpcError) as raised:
        identification.CreateCustomer(person(unique_email()), metadata=reader_auth, timeout=TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
