"""``tidal deploy``, ``tidal rollout …`` and ``tidal rollback``: bring a model version to a
deployment's traffic, watch and steer the rollout, and go back.

    tidal deploy elec2@4 --to elec2                         # the [rollout] strategy
    tidal deploy elec2:4 --to elec2 --strategy canary --steps 10,50,100 --step-time 15m
    tidal rollout status [elec2]        # where each rollout stands, its last analysis
    tidal rollout step elec2            # analyse now and take the decision that is due
    tidal rollout pause|resume|promote|abort elec2 [-r WHY]
    tidal rollback elec2                # the previous stable version, at once
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

rollout_app = command_group(
    no_args_is_help=True,
    help="Rollouts: watch and steer a version's way to a deployment's traffic.")




def deploy(
    version: Annotated[str, typer.Argument(
        help="The version: NAME@3, NAME:3 or NAME@alias (e.g. elec2@champion).")],
    to: Annotated[str, typer.Option("--to", help="The deployment.")],
    strategy: Annotated[str | None, typer.Option(
        "--strategy", "-s",
        help="blue_green, shadow, canary or shadow_then_canary (default: [rollout]).")] = None,
    steps: Annotated[str | None, typer.Option(
        "--steps", help="Canary steps in percent, e.g. 5,25,50,100.")] = None,
    step_time: Annotated[str | None, typer.Option(
        "--step-time", help="Least time per canary step, e.g. 10m.")] = None,
    shadow_requests: Annotated[int | None, typer.Option(
        "--shadow-requests", min=1, help="Mirrored requests before the shadow's verdict.")
    ] = None,
    shadow_time: Annotated[str | None, typer.Option(
        "--shadow-time", help="Or this long, whichever comes first, e.g. 1h.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Allow rolling out a vetoed or archived version.")] = False,
    reason: ReasonOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Roll a model version out to a deployment (a new deployment simply serves it)."""
    from tidal.control.rollout import Rollouts
    from tidal.core.errors import NotFoundError

    handle = open_project(project)
    candidate = handle.model_version(_version_ref(version))
    try:
        handle.get_deployment(to)
    except NotFoundError:
        created = handle.set_deployment(to, candidate, reason=reason or "first deployment",
                                        force=force)
        _print({"deployment": to, "rollout": None, "serving": created.to_dict()}, as_json,
               f"{to} created: it serves {candidate.ref} (nothing to roll out against)")
        return
    plan = _plan(handle.settings.rollout, steps=steps, step_time=step_time,
                 shadow_requests=shadow_requests, shadow_time=shadow_time)
    rollout = Rollouts(handle).start(to, candidate, strategy=strategy, plan=plan,
                                     reason=reason, force=force)
    _print({"deployment": to, "rollout": rollout.to_dict()}, as_json,
           f"rollout {rollout.id}: {candidate.ref} to {to}, {rollout.strategy}, "
           f"{_where(rollout)}")


@rollout_app.command("status")
def rollout_status(
    deployment: Annotated[str | None, typer.Argument(help="One deployment (default: all).")
                          ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Where each rollout in progress stands (with one deployment: its recent ones too)."""
    handle = open_project(project)
    if deployment is not None:
        handle.get_deployment(deployment)
        rollouts = handle.rollouts.history(deployment, limit=10)
    else:
        rollouts = handle.rollouts.all_active()
    if as_json:
        display.print_json([r.to_dict() for r in rollouts])
        return
    if not rollouts:
        display.console.print("no rollout in progress", highlight=False)
        return
    rows = [[str(r.id), r.deployment, f"{r.model}:{r.baseline_version} → {r.candidate_version}",
             r.strategy, _where(r), r.status, display.when(r.updated_at, short=True),
             _last(r)] for r in rollouts]
    display.console.print(display.table(
        "rollouts", ["id", "deployment", "versions", "strategy", "at", "status", "updated",
                     "last analysis"], rows, no_wrap=("id", "versions", "updated")))


@rollout_app.command("step")
def rollout_step(deployment: DeploymentArgument, project: ProjectOption = None,
                 as_json: JsonOption = False) -> None:
    """Analyse the rollout now and take the decision that is due (what the controller
    does at each tick)."""
    from tidal.control.rollout import Rollouts

    handle = open_project(project)
    rollout = Rollouts(handle).reconcile(deployment)
    if rollout is None:
        handle.get_deployment(deployment)
        _print({"deployment": deployment, "rollout": None}, as_json,
               f"{deployment} has no rollout in progress")
        return
    _print({"deployment": deployment, "rollout": rollout.to_dict()}, as_json,
           f"rollout {rollout.id}: {rollout.status}, {_where(rollout)}; {_last(rollout)}")


def _steer(action: str):
    def command(deployment: DeploymentArgument, reason: ReasonOption = None,
                project: ProjectOption = None, as_json: JsonOption = False) -> None:
        from tidal.control.rollout import Rollouts

        rollout = getattr(Rollouts(open_project(project)), action)(deployment, reason)
        _print({"deployment": deployment, "rollout": rollout.to_dict()}, as_json,
               f"rollout {rollout.id} of {deployment}: {rollout.status}, {_where(rollout)}")

    command.__doc__ = {
        "pause": "Stop the rollout where it is (its traffic stays) until resumed.",
        "resume": "Let a paused or holding rollout go on.",
        "promote": "Give the candidate all the traffic now.",
        "abort": "End the rollout; the stable version gets all the traffic back.",
    }[action]
    return command


for _action in ("pause", "resume", "promote", "abort"):
    rollout_app.command(_action)(_steer(_action))


def rollback(deployment: DeploymentArgument, reason: ReasonOption = None,
             project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Back to the previous stable version at once (a rollout in progress: to its
    baseline). Model servers follow within their poll interval (0.5 s)."""
    from tidal.control.rollout import Rollouts

    serving = Rollouts(open_project(project)).rollback(deployment, reason)
    _print({"deployment": deployment, "serving": serving.to_dict()}, as_json,
           f"{deployment} serves {serving.model}:{serving.stable_version} again")


def _version_ref(text: str) -> str:
    """``NAME@3`` means version 3 (the registry spells it ``NAME:3``); an alias stays."""
    name, at, rest = text.partition("@")
    return f"{name}:{rest}" if at and rest.isdigit() else text


def _plan(section: Any, *, steps: str | None, step_time: str | None,
          shadow_requests: int | None, shadow_time: str | None) -> Any:
    changes: dict[str, Any] = {}
    if steps is not None:
        try:
            changes["steps"] = [float(p) / 100 for p in steps.split(",") if p.strip()]
        except ValueError:
            raise ValidationError(f"--steps takes percentages such as 5,25,50,100, got "
                                  f"{steps!r}") from None
    if step_time is not None:
        changes["step_time"] = step_time
    if shadow_requests is not None:
        changes["shadow_requests"] = shadow_requests
    if shadow_time is not None:
        changes["shadow_time"] = shadow_time
    if not changes:
        return section
    from pydantic import ValidationError as PydanticError

    try:
        return type(section).model_validate(section.model_dump() | changes)
    except PydanticError as exc:
        raise ValidationError("; ".join(e["msg"] for e in exc.errors())) from None


def _where(rollout: Any) -> str:
    if rollout.phase == "shadow":
        return "shadow phase"
    if rollout.phase == "switched":
        return "switched"
    steps = rollout.plan.get("steps") or []
    weight = steps[rollout.step] if rollout.step < len(steps) else 1.0
    return f"canary at {weight:.0%}"


def _last(rollout: Any) -> str:
    analysis = rollout.last_analysis
    if not analysis:
        return "-"
    bad = [c["name"] for c in analysis["comparisons"] if c["verdict"] != "pass"]
    return analysis["verdict"] + (f" ({', '.join(bad)})" if bad else "")


def _print(document: dict[str, Any], as_json: bool, line: str) -> None:
    if as_json:
        display.print_json(document)
    else:
        display.console.print(line, highlight=False)


def controller(
    interval: Annotated[float, typer.Option("--interval", min=0.05,
                                            help="Seconds between ticks.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit.")] = False,
    lease_ttl: Annotated[float, typer.Option(
        "--lease-ttl", min=1.0, help="Seconds a silent leader keeps the lead.")] = 10.0,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the reconcile loop: monitors, rollouts, policies, scheduled scoring. One
    controller leads at a time (a lease in the store); others wait and take over when it
    stops."""
    import logging
    import signal
    import threading

    from tidal.control.controller import Controller

    if interval >= lease_ttl:
        raise ValidationError(f"--interval ({interval:g} s) must be shorter than --lease-ttl "
                              f"({lease_ttl:g} s), or the lease lapses between ticks")
    handle = open_project(project)
    loop = Controller(handle, lease_ttl=lease_ttl)
    if once:
        tick = loop.tick()
        loop.leases.release("controller", loop.holder)
        _print(tick.to_dict(), as_json,
               ("leader: " if tick.leader else "not the leader: ")
               + f"{tick.windows} window(s), {len(tick.alerts)} alert change(s), "
               f"{len(tick.rollouts)} rollout(s), {len(tick.policies)} policy action(s), "
               f"{len(tick.schedules)} schedule window(s)"
               + (f"; errors: {'; '.join(tick.errors)}" if tick.errors else ""))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    display.console.print(f"controller {loop.holder}: ticking every {interval:g} s "
                          "(Ctrl-C stops)", highlight=False)
    loop.run(interval=interval, stop=stop)


def why(deployment: DeploymentArgument, project: ProjectOption = None,
        as_json: JsonOption = False) -> None:
    """Why is this version serving? The change, rollout, policy and model behind it."""
    from tidal.control.why import explain, story

    document = explain(open_project(project), deployment)
    if as_json:
        display.print_json(document)
        return
    for line in story(document):
        display.console.print(line, highlight=False)
