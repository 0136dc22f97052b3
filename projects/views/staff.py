"""Pages for staff: Swarm nodes (forget a dead one) and drift."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST, require_safe

from projects.http import DashboardRequest
from projects.services.errors import ServiceError
from projects.services.placement import nodes as placement
from projects.views.common import login_required, refusal_shown

# --- nodes and drift (staff) ---------------------------------------------------------


@login_required
@require_safe
def nodes(request: DashboardRequest) -> HttpResponse:
    """On a Swarm: each node's state, projects and free memory (what placement reads)."""
    if not request.user.is_staff:
        raise PermissionDenied("The nodes are for operators.")
    return TemplateResponse(request, "projects/nodes.html", {"overview": placement.nodes_overview()})


@login_required
@require_POST
def node_forget(request: DashboardRequest, name: str) -> HttpResponse:
    """Give up on a down node, confirmed by its name: its projects can then be purged without it."""
    if not request.user.is_staff:
        raise PermissionDenied("The nodes are for operators.")
    try:
        forgotten = placement.node_forget(name=name, confirm=request.POST.get("confirm"), requested_by=request.user)
    except ServiceError as refused:
        status, error = refusal_shown(refused)
        context = {"overview": placement.nodes_overview(), "forget_error": error, "forget_node": name}
        return TemplateResponse(request, "projects/nodes.html", context, status=status)
    messages.success(
        request,
        f"Node {forgotten.node} is forgotten: its {len(forgotten.projects)} project(s) can be purged without it "
        f"(their volumes stay on the node). Seen ready again, it is no longer forgotten.",
    )
    return redirect("nodes")


@login_required
@require_safe
def drift(request: DashboardRequest) -> HttpResponse:
    """What the engine runs against what Berth recorded, each mismatch with its fix; changes nothing."""
    from projects.services.fleet.drift import drift_report

    if not request.user.is_staff:
        raise PermissionDenied("The drift report is for operators.")
    return TemplateResponse(request, "projects/drift.html", {"report": drift_report()})
