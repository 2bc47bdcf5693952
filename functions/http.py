"""What every HTTP trigger shares: turning an ApiResponse into the Functions response type."""

from __future__ import annotations

import json

import azure.functions as func

from shared.api.builds import ApiResponse


def reply(response: ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(response.body), status_code=response.status, mimetype="application/json"
    )
