"""The one way the Function talks to a cloud service: a token, retries within a deadline, and never a
second submission after an answer that may have been lost.

Every backend that submits over HTTP sends through :class:`ServiceClient`. A request whose answer may
have been lost (a dropped connection, a timeout, 500/502/504) may have been carried out all the same, so
before it is sent again the caller's ``look_first`` asks the service whether the work exists; if it
does, :class:`AlreadyStarted` ends the submission with that run instead of starting a second one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from sheetdrop.submit import SubmitError
from sheetdrop.submit.retry import Retrier, RetryExhausted, RetryPolicy

#: Server errors after which the request may have been carried out all the same. 429/503/408 say it was not.
AMBIGUOUS_STATUSES = (500, 502, 504)


class TokenCredential(Protocol):
    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class AlreadyStarted(Exception):
    """An earlier attempt started the run (or job) although its answer was lost: do not submit again."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def default_credential(managed_identity_client_id: str | None) -> TokenCredential:
    """The Function's managed identity in Azure (a user-assigned one by its client id), `az login` on a laptop."""
    from azure.identity import DefaultAzureCredential

    if managed_identity_client_id:
        return DefaultAzureCredential(managed_identity_client_id=managed_identity_client_id)
    return DefaultAzureCredential()


def entra_token(credential: TokenCredential, scope: str) -> str:
    try:
        return credential.get_token(scope).token
    except Exception as exc:  # azure-identity raises several types; all mean "no token"
        raise SubmitError(
            f"could not get a Microsoft Entra token for {scope} from {type(credential).__name__}: {exc}. "
            "In Azure, enable the Function app's managed identity (for a user-assigned identity set "
            "AZUREML_MANAGED_IDENTITY_CLIENT_ID); locally, run `az login`") from exc


def service_error(response: requests.Response) -> str:
    """The service's own words: ErrorResponse {"error": {"code", "message"}} or the raw body."""
    try:
        payload = response.json()
    except ValueError:
        return " ".join(response.text.split())[:500]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return f"{code}: {message}" if code else str(message)
    return json.dumps(payload)[:500]


@dataclass
class ServiceClient:
    credential: TokenCredential
    retrier: Retrier = field(default_factory=Retrier)
    session: requests.Session = field(default_factory=requests.Session)
    new_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))
    #: Appended to a "kept failing" error: who retries next (the trigger, for a submission).
    gave_up: str = "the blob will be retried by the trigger"

    @classmethod
    def for_function(cls, managed_identity_client_id: str | None, deadline_seconds: float,
                     credential: TokenCredential | None = None) -> ServiceClient:
        """As the Function talks to a service: its managed identity, all retries within the submit deadline."""
        return cls(credential or default_credential(managed_identity_client_id),
                   Retrier(RetryPolicy(deadline_seconds=deadline_seconds)))

    def send(self, method: str, url: str, *, scope: str, what: str, data: bytes | None = None,
             params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
             look_first: Callable[[], str | None] | None = None) -> requests.Response:
        """The first answer that is not worth retrying (success, or a 4xx the caller explains).

        ``look_first``: for a request that starts work, what the service already has for it; asked before
        every resend that follows an attempt which may have reached the service (then, once one may have,
        before every later one too). Raises :class:`AlreadyStarted` when it finds the work, SubmitError
        when the retries or the deadline run out.
        """
        ambiguous = False

        def attempt(timeout: tuple[float, float]) -> requests.Response:
            nonlocal ambiguous
            if ambiguous and look_first is not None:
                found = look_first()
                if found:
                    raise AlreadyStarted(found)
            sent = {"Accept": "application/json", **(headers or {}),
                    "Authorization": f"Bearer {entra_token(self.credential, scope)}",
                    "x-ms-client-request-id": self.new_id()}
            try:
                response = self.session.request(method, url, data=data, params=params, headers=sent, timeout=timeout)
            except (requests.ConnectionError, requests.Timeout):
                ambiguous = True
                raise
            ambiguous = ambiguous or response.status_code in AMBIGUOUS_STATUSES
            return response

        try:
            return self.retrier.call(attempt, what)
        except RetryExhausted as exc:
            raise SubmitError(f"{exc} (the service kept failing; {self.gave_up})") from exc
