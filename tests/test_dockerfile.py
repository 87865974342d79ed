"""app/Dockerfile: its shape (non-root user, port 3000, healthcheck, uvicorn on 0.0.0.0:3000)
and a real build of the app/ context through the SDK. No base image can be pulled here, so:
- against a stand-in Python base made from the local busybox image (shims for python -m venv,
  pip install -r, groupadd, useradd) the whole Dockerfile builds through every step, and the
  image has the user, port, healthcheck, command and files it should;
- against the bare busybox base the build gets past COPY and fails at the first RUN
  (no python), which k3dtui reports naming that step.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.fixtures import BUSYBOX, ensure_busybox

from k3dtui.core.docker import build_image
from k3dtui.core.errors import K3dtuiError
from k3dtui.resources import app_dir

STANDIN = Path(__file__).parent / "fakes" / "python-standin"


def dockerfile_text() -> str:
    with app_dir() as path:
        return (path / "Dockerfile").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_shape() -> None:
    ins = instructions(dockerfile_text())
    final = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM"):]
    users = [rest for w, rest in final if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as a non-root user"
    assert ("EXPOSE", "3000") in final
    assert any(w == "HEALTHCHECK" and "/healthz" in rest for w, rest in final)
    cmd = next(rest for w, rest in reversed(final) if w == "CMD")
    assert '"uvicorn"' in cmd and '"0.0.0.0"' in cmd and '"3000"' in cmd
    assert ins[0][0] == "ARG" and ins[0][1].startswith("PYTHON_IMAGE=") and "slim" in ins[0][1]
    # the final stage installs no build tools and keeps no pip cache
    assert not any(w == "RUN" and re.search(r"apt-get|gcc|build-essential", rest) for w, rest in final)


@pytest.fixture
def images(docker_engine: Any) -> Iterator[tuple[Any, list[str], list[str]]]:
    """(client, tags to remove, build log lines whose ``---> id`` images are removed)."""
    ensure_busybox(docker_engine)
    tags: list[str] = []
    log: list[str] = []
    yield docker_engine, tags, log
    keep = {docker_engine.images.get(BUSYBOX).short_id.split(":")[1][:12]}
    for tag in reversed(tags):
        with contextlib.suppress(Exception):
            docker_engine.images.remove(tag, force=True)
    ids = [m.group(1) for ln in log if (m := re.match(r"^ ---> ([0-9a-f]{12})$", ln))]
    for image_id in reversed(ids):
        if image_id in keep:
            continue
        with contextlib.suppress(Exception):
            docker_engine.images.remove(image_id)


@pytest.mark.docker
def test_app_image_builds_through_every_step(images: tuple[Any, list[str], list[str]]) -> None:
    client, tags, log = images
    run = uuid.uuid4().hex[:8]
    base = f"k3dtui-test/python-standin:{run}"
    app = f"k3dtui-test/fastapi-random:{run}"
    tags += [base, app]
    build_image(STANDIN, base, log.append, client, buildargs={"BASE": BUSYBOX})
    with app_dir() as context:
        build_image(context, app, log.append, client, buildargs={"PYTHON_IMAGE": base})
    steps = [ln for ln in log if ln.startswith("Step ")]
    app_steps = steps[next(i for i, s in enumerate(steps) if "ARG PYTHON_IMAGE" in s):]
    total = int(app_steps[0].split("/")[1].split()[0])
    assert len(app_steps) == total, "every Dockerfile step ran"
    assert any(f"Successfully tagged {app}" in ln for ln in log)

    attrs = client.images.get(app).attrs["Config"]
    user = attrs["User"].split(":")[0]
    assert user and user not in ("root", "0"), "the image runs as a non-root user"
    assert "3000/tcp" in attrs["ExposedPorts"]
    assert "/healthz" in " ".join(attrs["Healthcheck"]["Test"])
    cmd = attrs["Cmd"]
    assert cmd[0] == "uvicorn" and "main:app" in cmd
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0" and cmd[cmd.index("--port") + 1] == "3000"
    assert attrs["WorkingDir"] == "/srv"
    assert attrs["Env"][0].startswith("PATH=/venv/bin:") or any(
        e.startswith("PATH=/venv/bin:") for e in attrs["Env"]
    )

    # the files are where the command expects them, owned by the app user
    out = client.containers.run(
        app,
        ["/bin/busybox", "sh", "-c",
         "/bin/busybox stat -c '%u:%g %n' /srv/main.py; /bin/busybox cat /venv/lib/installed.txt;"
         " /bin/busybox md5sum /srv/main.py"],
        remove=True, entrypoint=[],
    ).decode()
    with app_dir() as context:
        import hashlib

        want_md5 = hashlib.md5((context / "main.py").read_bytes()).hexdigest()
        requirements = (context / "requirements.txt").read_text()
    assert f"{user}:" in out.split(" /srv/main.py")[0], "main.py belongs to the app user"
    assert requirements.strip() in out
    assert want_md5 in out


@pytest.mark.docker
def test_build_without_python_fails_at_the_first_run(images: tuple[Any, list[str], list[str]]) -> None:
    client, tags, log = images
    app = f"k3dtui-test/fastapi-random:{uuid.uuid4().hex[:8]}"
    tags.append(app)
    with app_dir() as context, pytest.raises(K3dtuiError) as info:
        build_image(context, app, log.append, client, buildargs={"PYTHON_IMAGE": BUSYBOX})
    err = info.value
    steps = [ln for ln in log if ln.startswith("Step ")]
    # FROM, WORKDIR and COPY requirements.txt all ran; the RUN that needs python failed
    assert [s.split(" : ")[1].split()[0] for s in steps] == ["ARG", "FROM", "WORKDIR", "COPY", "RUN"]
    assert "RUN python -m venv" in steps[-1]
    assert "at Step 5/" in err.message and "RUN python -m venv" in err.message
    assert "returned a non-zero code: 127" in err.message
    assert any("python: not found" in ln for ln in log)
    assert err.hint


def test_build_without_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(K3dtuiError, match="no Dockerfile"):
        build_image(tmp_path, "x:y", lambda _: None, client=object())


@pytest.mark.docker
def test_unpullable_base_is_a_clear_pull_error(images: tuple[Any, list[str], list[str]]) -> None:
    client, tags, log = images
    app = f"k3dtui-test/fastapi-random:{uuid.uuid4().hex[:8]}"
    tags.append(app)
    base = f"k3dtui-test/no-such-base:{uuid.uuid4().hex[:8]}"  # local-only name: never pullable
    with app_dir() as context, pytest.raises(K3dtuiError) as info:
        build_image(context, app, log.append, client, buildargs={"PYTHON_IMAGE": base})
    err = info.value
    assert "at Step 2/" in err.message and "FROM ${PYTHON_IMAGE}" in err.message
    assert "base image could not be had" in err.hint
    assert not any(ln.startswith("Step 3/") for ln in log)


@pytest.mark.docker
async def test_provider_build_streams_lines_on_the_loop(
    images: tuple[Any, list[str], list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    import threading

    from k3dtui.core.k3d_provider import K3dProvider

    client, tags, _ = images
    (tmp_path / "Dockerfile").write_text(f"FROM {BUSYBOX}\nRUN echo k3dtui-build-line\n")

    @contextlib.contextmanager
    def fake_app_dir() -> Iterator[Path]:
        yield tmp_path

    monkeypatch.setattr("k3dtui.core.k3d_provider.app_dir", fake_app_dir)
    tag = f"k3dtui-test/provider-build:{uuid.uuid4().hex[:8]}"
    tags.append(tag)
    loop_thread = threading.get_ident()
    seen: list[tuple[str, bool]] = []
    await K3dProvider("demo").build_image(tag, lambda ln: seen.append((ln, threading.get_ident() == loop_thread)))
    assert any(ln == "k3dtui-build-line" for ln, _ in seen)
    assert any(ln.startswith(f"Successfully tagged {tag}") for ln, _ in seen)
    assert all(on_loop for _, on_loop in seen), "lines reach the sink on the caller's loop"
    assert client.images.get(tag).tags == [tag]
    images[2].extend(ln for ln, _ in seen)
