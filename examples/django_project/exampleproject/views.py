"""Views that answer from the request's pinned configuration snapshot."""

import os

from django.http import JsonResponse

import hotcfg


def index(request):
    snap = request.hotcfg  # pinned for this request; hotcfg.get() agrees
    return JsonResponse(
        {
            "pid": os.getpid(),
            "generation": snap.generation,
            "greeting": snap.get("greeting", "hello"),
            "new_checkout": hotcfg.get("features.new_checkout", False),
        }
    )


async def index_async(request):
    return index(request)
