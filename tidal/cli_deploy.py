"""``tidal deployments``: which model versions each endpoint serves, and its history.

A deployment names an endpoint and the versions of one registered model behind it: the
stable version, an optional canary with its share of the traffic, an optional shadow
(mirrored, never answered). Model servers pick up every change within a second.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tidal import display
from tidal.cli_options import (
    DeploymentArgument,
    JsonOption,
    ProjectOption,
    ReasonOption,
    command_group,
    open_project,
)
from tidal.core.errors import ValidationError

deployments_app = command_group(
    no_args_is_help=True,
    help="Deployments: which model versions each endpoint serves (stable, canary, shadow).")




@deployments_app.command("list")
def deployments_list(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List deployments with the versions they serve."""
    deployments = open_project(project).list_deployments()
    if as_json:
        display.print_json([d.to_dict() for d in deployments])
        return
    rows = [[d.name, d.model, str(d.stable_version), _canary(d.canary_version, d.canary_weight),
             _version(d.shadow_version), str(d.revision), display.when(d.updated_at, short=True)]
            for d in deployments]
    display.console.print(display.table(
        f"{len(deployments)} deployments",
        ["name", "model", "stable", "canary", "shadow", "revision", "updated"], rows,
        no_wrap=("stable", "canary", "shadow", "revision", "updated")))


@deployments_app.command("show")
def deployments_show(
    name: DeploymentArgument,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000,
                                       help="How many recent changes to show.")] = 20,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a deployment and its recent changes (who, when, why)."""
    handle = open_project(project)
    deployment = handle.get_deployment(name)
    events = handle.deployment_history(name, limit)
    if as_json:
        display.print_json(deployment.to_dict() | {"events": [e.to_dict() for e in events]})
        return
    d = deployment
    rows = [
        ["name", d.name], ["model", d.model], ["stable", f"{d.model}:{d.stable_version}"],
        ["canary", "" if d.canary_version is None
         else f"{d.model}:{d.canary_version} at {_percent(d.canary_weight)} of requests"],
        ["shadow", "" if d.shadow_version is None else f"{d.model}:{d.shadow_version}"],
        ["max batch size", "server default" if d.max_batch_size is None
         else str(d.max_batch_size)],
        ["max batch wait", "server default" if d.max_batch_wait_ms is None
         else f"{display.number(d.max_batch_wait_ms)} ms"],
        ["revision", str(d.revision)], ["created", display.when(d.created_at)],
        ["updated", display.when(d.updated_at)], ["updated by", d.updated_by or ""],
    ]
    display.console.print(display.table(f"deployment {d.name}", ["field", "value"], rows))
    history = [[display.when(e.at), e.kind.removeprefix("deployment_"),
                _change(e.payload or {}), e.actor or "", e.reason or ""] for e in events]
    display.console.print(display.table("recent changes", ["when", "event", "what", "who",
                                                           "why"], history))


@deployments_app.command("set")
def deployments_set(
    name: DeploymentArgument,
    model_ref: Annotated[str, typer.Argument(
        help="The stable version: NAME:3, NAME@champion (NAME alone: its latest).")],
    canary: Annotated[str | None, typer.Option(
        "--canary", help="Canary version: a number, an alias or NAME:3.")] = None,
    weight: Annotated[float, typer.Option(
        "--weight", "-w", help="Share of requests for the canary, 0 to 1.")] = 0.0,
    shadow: Annotated[str | None, typer.Option(
        "--shadow", help="Shadow version (mirrored, never answered): number, alias, NAME:3.")
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option(
        "--max-batch-size", help="Largest batch a replica forms (default: the server's).")
    ] = None,
    max_batch_wait_ms: Annotated[float | None, typer.Option(
        "--max-batch-wait-ms", help="Longest a request waits for a batch to fill, in ms.")
    ] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Allow serving a vetoed or archived version.")] = False,
    reason: ReasonOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or replace a deployment (settings not given are reset to their defaults)."""
    record = open_project(project).set_deployment(
        name, model_ref, canary=canary, canary_weight=weight, shadow=shadow,
        max_batch_size=max_batch_size, max_batch_wait_ms=max_batch_wait_ms, reason=reason,
        force=force)
    if as_json:
        display.print_json(record.to_dict())
        return
    served = [f"{record.model}:{record.stable_version} (stable)"]
    if record.canary_version is not None:
        served.append(f"{record.model}:{record.canary_version} at "
                      f"{_percent(record.canary_weight)} (canary)")
    if record.shadow_version is not None:
        served.append(f"{record.model}:{record.shadow_version} (shadow)")
    display.console.print(f"{record.name} serves {', '.join(served)} — revision "
                          f"{record.revision}")


@deployments_app.command("delete")
def deployments_delete(
    name: DeploymentArgument,
    reason: ReasonOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
                   ] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a deployment: replicas stop serving it (its history is kept)."""
    handle = open_project(project)
    deployment = handle.get_deployment(name)  # an unknown name fails before any question
    if not yes:
        if not _interactive():
            raise ValidationError(f"deleting deployment {name!r} needs confirmation: "
                                  "pass --yes")
        typer.confirm(f"Delete deployment {name!r} (serving {deployment.model}:"
                      f"{deployment.stable_version})?", abort=True)
    handle.delete_deployment(name, reason=reason)
    if as_json:
        display.print_json({"deleted": name,
                            "revision": handle.deployments.latest_revision()})
    else:
        display.console.print(f"Deleted deployment {name}")


# -- helpers ------------------------------------------------------------------------------
def _interactive() -> bool:
    import sys

    return sys.stdin is not None and sys.stdin.isatty()


def _percent(weight: float) -> str:
    return f"{display.number(weight * 100)}%"


def _version(version: int | None) -> str:
    return "" if version is None else str(version)


def _canary(version: int | None, weight: float) -> str:
    return "" if version is None else f"{version}@{_percent(weight)}"


def _settings(settings: dict[str, Any] | None) -> str:
    if not settings:
        return "nothing"
    text = f"{settings.get('model')}:{settings.get('stable_version')}"
    if settings.get("canary_version") is not None:
        text += (f", canary {settings['canary_version']}@"
                 f"{_percent(settings.get('canary_weight') or 0.0)}")
    if settings.get("shadow_version") is not None:
        text += f", shadow {settings['shadow_version']}"
    return text


def _change(payload: dict[str, Any]) -> str:
    """"elec2:2, canary 3@10% → elec2:3" for a deployment event."""
    before, after = payload.get("before"), payload.get("after")
    if before is None:
        return f"created: {_settings(after)}"
    if after is None:
        return f"deleted (was {_settings(before)})"
    text = f"{_settings(before)} → {_settings(after)}"
    if _settings(before) == _settings(after):
        text = ""
    batching = [f"{key.replace('_', ' ')} {_or_default(before.get(key))} → "
                f"{_or_default(after.get(key))}"
                for key in ("max_batch_size", "max_batch_wait_ms")
                if before.get(key) != after.get(key)]
    return ", ".join(part for part in (text, *batching) if part)


def _or_default(value: Any) -> str:
    return "default" if value is None else display.number(value)
