"""``tidal review``: the human review queue.

    tidal review list -d elec2                    # what is queued
    tidal review next -d elec2 --reviewer ana     # claim the next item and show it
    tidal review label 17 1 --reviewer ana [--unfamiliar] [--note "..."]
    tidal review label 18 --unsure --reviewer ana
    tidal review agreement -d elec2               # label consistency between reviewers
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from tidal import display
from tidal.cli_options import JsonOption, ProjectOption, command_group, open_project
from tidal.core.errors import NotFoundError

review_app = command_group(no_args_is_help=True,
                         help="Review: predictions routed to people, labelled by them.")

DeploymentOption = Annotated[str, typer.Option("--deployment", "-d", help="The deployment.")]
ReviewerOption = Annotated[str | None, typer.Option(
    "--reviewer", "-r", help="Who is reviewing (default: the project's actor: "
    "$TIDAL_ACTOR, else your login name).")]



@review_app.command("list")
def review_list(deployment: Annotated[str | None, typer.Option(
                    "--deployment", "-d", help="One deployment (default: all).")] = None,
                status: Annotated[str | None, typer.Option(
                    "--status", help="open, claimed or done.")] = None,
                limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
                project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List review items, oldest first."""
    items = open_project(project).review.items(deployment, status=status, limit=limit)
    if as_json:
        display.print_json([i.to_dict() for i in items])
        return
    rows = [[str(i.id), i.deployment, i.reason, i.status, str(i.answers),
             _brief(i.outputs), display.when(i.event_time, short=True)] for i in items]
    display.console.print(display.table(f"{len(items)} review items", [
        "item", "deployment", "reason", "status", "answers", "model said", "event time"],
        rows, no_wrap=("item", "event time")))


@review_app.command("next")
def review_next(deployment: DeploymentOption, reviewer: ReviewerOption = None,
                project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Claim the next item you have not answered, and show it."""
    handle = open_project(project)
    reviewer = reviewer or handle.settings.actor
    if deployment not in {d.name for d in handle.list_deployments()}:
        raise NotFoundError(f"no deployment named {deployment!r}")
    item = handle.review.claim_next(
        deployment, reviewer, now=handle.clock.now(),
        claim_seconds=handle.settings.monitor.review.claim_timeout)
    if as_json:
        display.print_json(None if item is None else item.to_dict())
        return
    if item is None:
        display.console.print(f"nothing left to review in {deployment} for {reviewer}",
                              highlight=False)
        return
    rows = [[name, json.dumps(value)] for name, value in item.inputs.items()]
    rows += [[f"model: {name}", json.dumps(value)] for name, value in item.outputs.items()]
    rows += [[f"shadow: {name}", json.dumps(value)]
             for name, value in (item.shadow_outputs or {}).items()]
    display.console.print(display.table(
        f"item {item.id} ({item.reason}, request {item.request_id} row {item.row})",
        ["field", "value"], rows))
    display.console.print(f"answer: tidal review label {item.id} LABEL --reviewer {reviewer}"
                          f"  (or --unsure)", highlight=False)


@review_app.command("label")
def review_label(item: Annotated[int, typer.Argument(help="The item's number.")],
                 label: Annotated[str | None, typer.Argument(
                     help="The label (JSON: 1, true, \"cat\"; plain text is text).")] = None,
                 reviewer: ReviewerOption = None,
                 unsure: Annotated[bool, typer.Option("--unsure", help="Cannot tell.")] = False,
                 unfamiliar: Annotated[bool, typer.Option(
                     "--unfamiliar", help="A case unlike the usual ones (goes to the "
                     "test set of the next training run).")] = False,
                 note: Annotated[str | None, typer.Option("--note", help="A remark.")] = None,
                 project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Answer an item: a label (it also becomes feedback) or --unsure."""
    from tidal.monitor.review import answer

    value: Any = None
    if label is not None:
        try:
            value = json.loads(label)
        except json.JSONDecodeError:
            value = label
    handle = open_project(project)
    reviewer = reviewer or handle.settings.actor
    done = answer(handle, item, reviewer, label=value, unsure=unsure,
                  familiar=not unfamiliar, note=note)
    if as_json:
        display.print_json(done.to_dict())
        return
    display.console.print(f"item {done.id}: {'unsure' if unsure else repr(value)} by "
                          f"{reviewer}; {done.answers} answer(s), {done.status}",
                          highlight=False)


@review_app.command("agreement")
def review_agreement(deployment: DeploymentOption, project: ProjectOption = None,
                     as_json: JsonOption = False) -> None:
    """Label consistency: how often reviewers agree, per pair and per class."""
    report = open_project(project).review.agreement(deployment)
    if as_json:
        display.print_json(report)
        return
    display.console.print(display.table(
        f"{report['items']} items answered by two reviewers or more", [
            "reviewers", "items", "agreement"],
        [[" & ".join(p["reviewers"]), str(p["items"]), f"{p['agreement']:.0%}"]
         for p in report["pairs"]]))
    display.console.print(display.table("per class", ["class", "label pairs", "agreement"], [
        [c["class"], str(c["pairs"]), f"{c['agreement']:.0%}"] for c in report["classes"]]))


def _brief(outputs: dict[str, Any]) -> str:
    if "label" in outputs:
        return f"label {outputs['label']}"
    if "prediction" in outputs:
        return f"{outputs['prediction']:.4g}" if isinstance(outputs["prediction"], float) \
            else str(outputs["prediction"])
    return ""
