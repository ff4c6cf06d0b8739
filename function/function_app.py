"""The Function app (Python v2 programming model): a blob-created trigger on the input container, a timer
that re-delivers blob versions an invocation abandoned or whose event was lost, and one that submits the
versions a burst left waiting for a batch job.

Thin on purpose: the SDK-type binding hands us a BlobClient (the workbook is never downloaded
here), we read the blob's properties and pass them on; the logic lives in ``sheetdrop``.
"""

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from sheetdrop.sweeper import flush_batches, sweep
from sheetdrop.trigger import BlobVersion, handle_blob

app = func.FunctionApp()


@app.function_name("workbook_dropped")
@app.blob_trigger(
    arg_name="client",
    path="%INPUT_CONTAINER%/{name}",
    connection="INPUT_STORAGE",
    source=func.BlobSource.EVENT_GRID,
)
def workbook_dropped(client: blob.BlobClient, context: func.Context) -> None:
    props = client.get_blob_properties()
    handle_blob(
        BlobVersion(
            container=client.container_name,
            name=client.blob_name,
            etag=props.etag,
            size=props.size,
            metadata=dict(props.metadata or {}),
        ),
        invocation_id=context.invocation_id,
    )


@app.function_name("abandoned_claims")
@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", use_monitor=True)
def abandoned_claims(timer: func.TimerRequest, context: func.Context) -> None:
    sweep(invocation_id=context.invocation_id)


@app.function_name("batch_flush")
@app.timer_trigger(arg_name="timer", schedule="*/30 * * * * *", use_monitor=False)
def batch_flush(timer: func.TimerRequest, context: func.Context) -> None:
    flush_batches(invocation_id=context.invocation_id)
