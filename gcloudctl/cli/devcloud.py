"""CLI for `gcloudctl devcloud`: up, status, down, logs, faults (thin: parse, call lifecycle, render)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import click
import yaml

from gcloudctl.devcloud import faults, guests, lifecycle
from gcloudctl.devcloud.layout import Layout, default_dir


def _layout(ctx: click.Context, directory: str | None) -> Layout:
    environ = ctx.obj.environ
    root = Path(directory) if directory else default_dir(Path(environ.get("HOME", str(Path.home()))))
    return Layout(root.expanduser().resolve())


def _progress_printer():
    t0 = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - t0:6.1f}s] {message}", err=True)

    return progress


dir_option = click.option("--dir", "directory", type=click.Path(file_okay=False),
                          help="devcloud directory (default ~/.local/share/gcloudctl/devcloud).")


@click.group("devcloud")
def devcloud() -> None:
    """A real all-in-one OpenStack on this machine (127.0.0.1 only)."""


@devcloud.command("up")
@dir_option
@click.option("--guests/--no-guests", "guests_mode", default=None,
              help="Servers become real namespace guests (SSH, cloud-init) / back to the plain fake driver. "
                   "Remembered in the devcloud dir; switching restarts nova-compute (docs/guests.md).")
@click.option("--cinder/--no-cinder", "cinder", default=None,
              help="Run Cinder (block storage, volume backups) / skip it to save about 0.7 GiB. Remembered in "
                   "the devcloud dir; default on; switching starts or stops only the Cinder services.")
@click.pass_context
def up_cmd(ctx: click.Context, directory: str | None, guests_mode: bool | None, cinder: bool | None) -> None:
    """Install (first time), start and bootstrap devcloud. Safe to repeat."""
    layout = _layout(ctx, directory)
    progress = _progress_printer()
    if guests_mode is not None:
        guests.set_mode(layout, guests_mode, progress)
    report = lifecycle.up(layout, progress=progress, environ=ctx.obj.environ, cinder=cinder)
    if ctx.obj.output != "table":
        _dump(ctx, report.__dict__)


@devcloud.command("status")
@dir_option
@click.pass_context
def status_cmd(ctx: click.Context, directory: str | None) -> None:
    """Each service: state, URL, version, pid, RSS. Exit 1 when any service that should run is not up."""
    layout = _layout(ctx, directory)
    rows = lifecycle.status(layout)
    mode = "guests" if guests.load_mode(layout).enabled else "plain"
    if ctx.obj.output == "table":
        header = f"{'SERVICE':<18}{'STATE':<10}{'URL':<24}{'VERSION':<10}{'PID':>8}{'RSS MiB':>10}"
        click.echo(header)
        for r in rows:
            click.echo(f"{r.name:<18}{r.state:<10}{r.url or '-':<24}{r.version or '-':<10}"
                       f"{r.pid or '-':>8}{r.rss_mib if r.rss_mib is not None else '-':>10}")
        total = sum(r.rss_mib or 0 for r in rows)
        click.echo(f"total RSS: {total:.0f} MiB")
        click.echo(f"compute mode: {mode}" + (f" ({len(guests.list_guests(layout))} guest(s))" if mode == "guests" else ""))
    else:
        _dump(ctx, {"services": [r.to_dict() for r in rows], "compute_mode": mode})
    ctx.exit(0 if all(r.state in ("up", "off") for r in rows) else 1)


@devcloud.command("down")
@dir_option
@click.option("--purge", is_flag=True, help="Also delete databases, vhost, venv, data and clouds.yaml entries.")
@click.pass_context
def down_cmd(ctx: click.Context, directory: str | None, purge: bool) -> None:
    """Stop every service (data kept unless --purge)."""
    layout = _layout(ctx, directory)
    stopped = lifecycle.down(layout, purge=purge, progress=_progress_printer(), environ=ctx.obj.environ)
    if not stopped and not purge:
        click.echo("devcloud was not running", err=True)


@devcloud.command("faults")
@dir_option
@click.option("--rate", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Share of requests that get a fault.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same faults (per service and method).")
@click.option("--kinds", default=",".join(f.value for f in faults.Fault), show_default=True,
              help="Faults to draw from (comma-separated).")
@click.option("--slow", "slow_seconds", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Delay of a `slow` answer, seconds.")
@click.option("--base-cloud", default="devcloud", show_default=True, help="devcloud clouds.yaml entry to copy.")
@click.option("--clouds-file", type=click.Path(dir_okay=False), help="Where to write the clouds.yaml "
              "(default: clouds-faults.yaml in the devcloud dir).")
@click.pass_context
def faults_cmd(ctx: click.Context, directory: str | None, rate: float, seed: int, kinds: str, slow_seconds: float,
               base_cloud: str, clouds_file: str | None) -> None:
    """Run fault-injecting proxies in front of devcloud's APIs until Ctrl-C (docs/reliability.md).

    Writes a clouds.yaml with one entry, `devcloud-faults`, whose auth URL (and, through
    Keystone's catalog, every endpoint) is a proxy; devcloud itself and its entries are untouched:

    \b
      OS_CLIENT_CONFIG_FILE=<file> gcloudctl --cloud devcloud-faults apply tenant.yaml --yes
    """
    layout = _layout(ctx, directory)
    try:
        chosen = tuple(faults.Fault(k.strip()) for k in kinds.split(",") if k.strip())
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; choose from {', '.join(f.value for f in faults.Fault)}", param_hint="--kinds")
    plan = faults.FaultPlan(rate=rate, seed=seed, kinds=chosen, slow_seconds=slow_seconds)
    target = Path(clouds_file) if clouds_file else layout.root / "clouds-faults.yaml"
    with faults.running(plan) as proxies:
        proxies.write_clouds_yaml(target, layout.clouds_yaml, base_cloud)
        for real, proxy in sorted(proxies.url_map.items()):
            click.echo(f"{proxy}  ->  {real}", err=True)
        click.echo(f"faults: {rate:.0%} of requests ({', '.join(k.value for k in chosen)}), seed {seed}", err=True)
        click.echo(f"export OS_CLIENT_CONFIG_FILE={target}; gcloudctl --cloud {faults.FAULT_CLOUD} ...", err=True)
        try:
            while True:
                time.sleep(10)
                click.echo(f"injected so far: {proxies.injected.snapshot()['faults']}", err=True)
        except KeyboardInterrupt:
            pass
        report = proxies.injected.snapshot()
    if ctx.obj.output == "table":
        click.echo(f"requests: {report['requests']}\ninjected: {report['faults']}")
    else:
        _dump(ctx, report)


@devcloud.command("proxy-command")
@dir_option
@click.pass_context
def proxy_command_cmd(ctx: click.Context, directory: str | None) -> None:
    """Print the ssh ProxyCommand that reaches floating IPs of devcloud guests (guests mode).

    Floating IPs live inside the devcloud's own network namespace `public`, never on this
    machine's interfaces; use: export GCLOUDCTL_SSH_PROXY_COMMAND="$(gcloudctl devcloud proxy-command)"
    """
    if not guests.load_mode(_layout(ctx, directory)).enabled:
        click.echo("devcloud is not in guests mode: servers are not reachable (gcloudctl devcloud up --guests)",
                   err=True)
        ctx.exit(1)
    click.echo(guests.public_proxy_command())


@devcloud.command("guests")
@dir_option
@click.pass_context
def guests_cmd(ctx: click.Context, directory: str | None) -> None:
    """List the running devcloud guests (guests mode): server id, hostname, fixed IP, memory."""
    rows = guests.list_guests(_layout(ctx, directory))
    if ctx.obj.output == "table":
        click.echo(f"{'SERVER ID':<38}{'HOSTNAME':<20}{'IP':<16}{'STATE':<9}{'RSS MiB':>8}")
        for g in rows:
            click.echo(f"{g.uuid:<38}{g.hostname:<20}{g.ip:<16}{'running' if g.running else 'stopped':<9}"
                       f"{g.rss_kib / 1024:>8.0f}")
    else:
        _dump(ctx, {"guests": [g.__dict__ for g in rows]})


@devcloud.command("logs")
@dir_option
@click.argument("service")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.pass_context
def logs_cmd(ctx: click.Context, directory: str | None, service: str, lines: int, follow: bool) -> None:
    """Show a service's log (also init-<project>, install, mariadb, rabbitmq)."""
    path = lifecycle.log_path(_layout(ctx, directory), service)
    argv = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [str(path)]
    click.echo(f"==> {path} <==", err=True)
    ctx.exit(subprocess.call(argv))


def _dump(ctx: click.Context, value) -> None:
    if ctx.obj.output == "json":
        click.echo(json.dumps(value, indent=2, default=str))
    else:
        click.echo(yaml.safe_dump(value, sort_keys=False))


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    cli.add_command(devcloud)
