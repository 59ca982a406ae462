"""What every command of the toolkit shares: flags, logging, errors, exit status, shards and ranks.

One dialect for the user, whichever stage a command belongs to:

* ``--config FILE``, and overrides as ``--cfg-options key=value [key.sub=value ...]`` (mmengine's
  spelling; ``--set key=value`` is the same thing, repeatable). Values are read as YAML
  (``1e-4``, ``[boxes]``, ``null``); dotted keys reach into nested mappings.
* ``--out-dir`` for an output folder, ``--device`` for stage 1's device, ``--shard-index`` /
  ``--num-shards`` for a slice of the image list.
* Exit status (:data:`EXIT_OK`, :data:`EXIT_REFUSED`, :data:`EXIT_SKIPPED`): 0 when everything was
  done; 2 when the run was refused for bad input (one line ``error: <file>: <what>`` on stderr, no
  traceback); 3 when the run finished but some inputs were skipped (each one listed in the run's
  problems file and on stderr), so a SLURM array task that skipped images does not look green.

Shards: shard ``i`` of ``N`` is ``ids[i::N]`` of the dataset's id list in its file order: the shards are
disjoint, cover the list, depend on nothing but the list and ``(i, N)``, and are balanced to within
one image. Under ``torchrun`` (``WORLD_SIZE > 1``) each rank further takes its own slice of the shard,
which is the same as shard ``i * W + rank`` of ``N * W`` interleaved; outputs do not depend on it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

import yaml

T = TypeVar("T")

#: Exit status of a finished run with nothing skipped.
EXIT_OK = 0
#: Exit status of a run refused for bad input (a user's mistake: bad file, flag or config).
EXIT_REFUSED = 2
#: Exit status of a run that finished but skipped some inputs (listed in its problems file).
EXIT_SKIPPED = 3


class UserError(Exception):
    """An error that is the user's to fix (a refused checkpoint or cache, a bad config): one line, exit 2.

    Subclass it (with the builtin that fits, e.g. ``class CacheMismatchError(UserError, RuntimeError)``)
    so that :func:`run_cli` reports it without a traceback.
    """


def user_errors() -> Tuple[Type[BaseException], ...]:
    """The exception types :func:`run_cli` prints as one ``error:`` line (exit 2)."""
    return (UserError, ValueError, FileNotFoundError, ImportError, OSError)


# -- arguments -------------------------------------------------------------------------------------
def add_config_arguments(parser: argparse.ArgumentParser, *, config_help: str, positional: bool = False) -> None:
    """``--config`` and the override flags ``--cfg-options`` / ``--set`` (dest ``cfg_options``).

    With ``positional`` the config may also be given as the first positional argument (mmseg's own
    ``tools/train.py CONFIG`` habit); ``--config`` wins when both are given.
    """
    if positional:
        parser.add_argument("config_positional", nargs="?", metavar="CONFIG", help=config_help)
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--cfg-options", dest="cfg_options", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="override config keys: key=value key.sub=value (YAML values)")
    parser.add_argument("--set", dest="cfg_options", action="append", metavar="KEY=VALUE",
                        help="the same as --cfg-options, one key per flag; repeatable")


def config_file(args: argparse.Namespace, parser: argparse.ArgumentParser, *, required: bool) -> str:
    """The config path of ``args`` (``--config`` or the positional one); a usage error when required."""
    path = getattr(args, "config", None) or getattr(args, "config_positional", None)
    if required and not path:
        parser.error("a config is required: --config FILE")
    return path


def parse_cfg_options(items: Sequence[str]) -> Dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` -> ``{"a": {"b": 1}, "c": ["x", "y"]}`` (values parsed as YAML).

    Raises:
        ValueError: an item without ``=``, or a key that is both a value and a mapping.
    """
    out: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--cfg-options expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        target = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"--cfg-options {key}: {part} is both a value and a mapping")
        target[parts[-1]] = _yaml_value(raw)
    return out


def _yaml_value(raw: str) -> Any:
    """YAML, except that a number YAML 1.1 leaves as a string (``1e-4``) becomes a float."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def flatten_options(options: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (mmengine's ``Config.merge_from_dict`` form)."""
    flat: Dict[str, Any] = {}
    for key, value in options.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_options(value, name + "."))
        else:
            flat[name] = value
    return flat


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard-index", type=int, default=0, help="this job's shard, 0..num_shards-1")
    parser.add_argument("--num-shards", type=int, default=1, help="how many shards split the image list")


# -- logging, warnings and errors ------------------------------------------------------------------
def setup_logging(level: int = logging.INFO) -> None:
    """One line per message with time and level; under torchrun only rank 0 logs below WARNING."""
    rank = int(os.environ.get("RANK", 0))
    logging.basicConfig(
        level=level if rank == 0 else logging.WARNING,
        format=f"%(asctime)s %(levelname)s{'' if rank == 0 else f' [rank {rank}]'} %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def silence_known_warnings() -> None:
    """Filter the one known, harmless warning of the OpenMMLab stack, by module and message: mmengine
    imports (and reloads) ``pkg_resources``, which setuptools marks deprecated, so every stage-2 command
    started with three such lines. The warning is attributed to the importing module:
    ``mmengine.utils.package_utils``, or ``importlib`` for its ``importlib.reload``."""
    for module in (r"mmengine\.utils\.package_utils", r"importlib"):
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning,
                                module=module)


def run_checked(fn: Callable[[], T]) -> Tuple[Optional[T], int]:
    """``(fn(), EXIT_OK)``; for a user's mistake (:func:`user_errors`) one ``error:`` line on stderr and
    ``(None, EXIT_REFUSED)`` instead of a traceback. Anything else is a bug and keeps its traceback."""
    try:
        return fn(), EXIT_OK
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, EXIT_REFUSED


def run_cli(body: Callable[[], int]) -> int:
    """Run a CLI body: its exit status, or :data:`EXIT_REFUSED` for a user's mistake (:func:`run_checked`)."""
    status, refused = run_checked(body)
    return refused if refused else status


def finish(problems: List[str], *, what: str) -> int:
    """Exit status of a batch run: :data:`EXIT_OK`, or :data:`EXIT_SKIPPED` with each problem on stderr."""
    if not problems:
        return EXIT_OK
    print(f"{what}: finished, but {len(problems)} input(s) were skipped (exit status {EXIT_SKIPPED}):",
          file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    return EXIT_SKIPPED


# -- shards and ranks ------------------------------------------------------------------------------
def shard_ids(ids: Sequence[str], *, shard_index: int, num_shards: int) -> List[str]:
    """``ids[shard_index::num_shards]``.

    Raises:
        ValueError: ``num_shards < 1`` or ``shard_index`` outside ``0..num_shards-1``.
    """
    if num_shards < 1:
        raise ValueError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must be in 0..{num_shards - 1}, got {shard_index}")
    return list(ids[shard_index::num_shards])


def world() -> Tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment (``(0, 1)`` when not distributed)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def rank_shard_ids(ids: Sequence[str], *, shard_index: int, num_shards: int) -> List[str]:
    """This process's images: the shard, then this rank's slice of it under torchrun."""
    rank, size = world()
    return shard_ids(shard_ids(ids, shard_index=shard_index, num_shards=num_shards), shard_index=rank, num_shards=size)
