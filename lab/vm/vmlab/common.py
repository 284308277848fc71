"""Output, errors and commands: the timestamped log, LabError, `step`, `run`/`out`, `parallel`, sizes."""

import concurrent.futures
import contextlib
import os
import shlex
import subprocess
import threading
import time

T0 = time.monotonic()


_print_lock = threading.Lock()


def log(msg):
    with _print_lock:
        print(f'[{time.monotonic() - T0:7.1f}s] {msg}', flush=True)


class LabError(Exception):
    pass


def run_command(fn, args):
    """Run one CLI command: its LabError, an interrupt and a closed pipe become exit codes (labctl, k8sctl)."""
    try:
        fn(args)
    except LabError as exc:
        log(f'ERROR: {exc}')
        return 1
    except KeyboardInterrupt:
        log('interrupted')
        return 130
    except BrokenPipeError:  # e.g. `labctl status | head`
        return 0
    return 0


@contextlib.contextmanager
def step(title):
    log(f'==> {title}')
    start = time.monotonic()
    try:
        yield
    except BaseException:
        log(f'    FAILED: {title} ({time.monotonic() - start:.1f}s)')
        raise
    log(f'    done: {title} ({time.monotonic() - start:.1f}s)')


def run(cmd, check=True, capture=False, timeout=None, **kw):
    """Run a command; on failure raise LabError with its stderr."""
    if capture:
        kw.setdefault('stdout', subprocess.PIPE)
        kw.setdefault('stderr', subprocess.PIPE)
    try:
        proc = subprocess.run(cmd, check=False, timeout=timeout, text=True, **kw)
    except FileNotFoundError as exc:
        raise LabError(f'{cmd[0]}: not found (run `labctl deps`)') from exc
    if check and proc.returncode != 0:
        err = (proc.stderr or '').strip() if capture else ''
        raise LabError(f'command failed ({proc.returncode}): {shlex.join(cmd)}\n{err}')
    return proc


def out(cmd, **kw):
    return run(cmd, capture=True, **kw).stdout


def du(path):
    """Disk blocks used under path, in bytes (sparse files count as used)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def human(n):
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
        n /= 1024
    return str(n)


def parallel(fn, items):
    """Run fn over items in threads; raise the first error after all finished."""
    results, errors = [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
        for fut in concurrent.futures.as_completed(futures):
            try:
                results.append(fut.result())
            except Exception as exc:
                errors.append(exc)
                log(f'ERROR: {exc}')
    if errors:
        raise errors[0]
    return results
