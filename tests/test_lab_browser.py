"""Real-browser test: lesson 5 in JupyterLab 4 (ipywidgets 8), driven in Debian's headless Chromium via Playwright.

It starts ``jupyter lab`` on 127.0.0.1 with a random token and throwaway settings (no autosave, so the lesson file
on disk is never touched), opens ``lessons/05_grad_cam.ipynb``, clears the stored outputs and runs all cells, then
drives the Grad-CAM explorer the way a student does: picks another class with the keyboard on the rendered
dropdown, moves the step slider with the keyboard and clicks the step button with the mouse. It checks that the
explorer's heatmap and the stepper's picture were re-rendered by the kernel, that no widget failed to render, and
saves a screenshot (its path is printed; run ``pytest -s`` to see it).

Skipped (with the reason) when Chromium or the Python package ``playwright`` is missing; CI installs Chromium.
Never run ``playwright install`` here: it downloads a browser. Adapted from shared/examples/test_lab_browser.py.
"""

import os
import pathlib
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]          # project root, served by Lab
NOTEBOOK = "lessons/05_grad_cam.ipynb"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT_MS = 150_000   # the lesson runs EfficientNet-Lite0 on a CPU: generous for a busy machine

sync_api = pytest.importorskip("playwright.sync_api", reason="the Python package playwright is not installed")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"chromium is not installed ({CHROMIUM}); apt-get install chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setting(root: pathlib.Path, plugin: str, text: str) -> None:
    path = root / "settings" / plugin
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def tmp():
    """One throwaway folder for Lab's config, settings, workspaces, the browser profile and the screenshots."""
    return pathlib.Path(tempfile.mkdtemp(prefix="xai-ref-lab-"))


@pytest.fixture(scope="module")
def lab(tmp):
    port, token = _free_port(), secrets.token_hex(16)
    _setting(tmp, "@jupyterlab/apputils-extension/notification.jupyterlab-settings", '{"fetchNews": "false"}')
    _setting(tmp, "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings", '{"autosave": false}')
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}   # Agg would leak into the kernel
    env.update(JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={ROOT}", "--allow-root",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}", f"--LabApp.user_settings_dir={tmp / 'settings'}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly",
           f"--FileCheckpoints.checkpoint_dir={tmp / 'checkpoints'}"]     # no .ipynb_checkpoints in lessons/
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
            break
        except Exception:
            if proc.poll() is not None or time.time() - t0 > 60:
                proc.kill()
                raise RuntimeError(f"jupyter lab did not start, see {tmp / 'lab.log'}")
            time.sleep(0.2)
    print(f"\n[lab] pid={proc.pid} port={port} up in {time.time() - t0:.1f}s")
    yield base, token
    try:   # clean shutdown (stops the kernels too), then make sure the process is gone
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST"),
                               timeout=5)
        proc.wait(timeout=15)
    except Exception:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    log.close()


@pytest.fixture
def page(tmp):
    with sync_api.sync_playwright() as p:
        profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)      # fresh profile
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                   args=CHROME_ARGS, viewport={"width": 1400, "height": 2000})
        ctx.set_default_timeout(30_000)
        pg = ctx.pages[0] if ctx.pages else ctx.new_page()
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        yield pg
        ctx.close()
        shutil.rmtree(profile, ignore_errors=True)


def menu(page, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=top).first.click()
    page.locator(".lm-Menu-item:visible", has_text=item).first.click()


def test_grad_cam_explorer_in_jupyterlab(lab, page, tmp):
    base, token = lab
    t0 = time.time()
    nb = nbformat.read(ROOT / NOTEBOOK, as_version=4)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    idx = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "GradCAMExplorer(" in c.source)

    page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}&reset")
    # kernel connected and idle (the status bar reads e.g. "Python 3 (ipykernel) | Idle")
    page.wait_for_function("""() => /\\|\\s*Idle/.test(
        (document.querySelector('#jp-main-statusbar') || {}).innerText?.replace(/\\n/g, ' | ') || '')""")
    page.wait_for_function(f"document.querySelectorAll('.jp-Notebook .jp-CodeCell').length === {n_code}")

    menu(page, "Edit", "Clear Outputs of All Cells")      # stored prompts would fake "done"
    page.wait_for_function("""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                                     .every(p => !/\\d/.test(p.textContent))""")
    menu(page, "Run", "Run All Cells")
    try:
        page.wait_for_function("""() => {
            const ps = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
            // a cell whose input is collapsed (the hidden exercise answers) shows an empty prompt
            return ps.some(p => /\\[\\d+\\]/.test(p.textContent)) &&
                   ps.every(p => /\\[\\d+\\]/.test(p.textContent) || p.textContent.trim() === '') &&
                   document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status === 'idle';
        }""", timeout=RUN_ALL_TIMEOUT_MS)
    except sync_api.TimeoutError:
        prompts = page.evaluate("""() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
                                         .map(p => p.textContent)""")
        page.screenshot(path=str(tmp / "run_all_timeout.png"))
        pytest.fail(f"Run All did not finish in {RUN_ALL_TIMEOUT_MS / 1000:.0f} s; prompts: {prompts}; "
                    f"screenshot {tmp / 'run_all_timeout.png'}, server log {tmp / 'lab.log'}")
    t_run = time.time() - t0

    # no cell raised (the lesson has no raises-exception cell) and every widget rendered
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                        has_text="Traceback").count() == 0
    cell = page.locator(".jp-Notebook .jp-Cell").nth(idx)   # pinned by index: never re-resolves to another cell
    explorer = cell.locator(".xr-explorer")
    sync_api.expect(explorer).to_be_visible()
    assert page.get_by_text("Error displaying widget").count() == 0
    assert page.get_by_text("Loading widget").count() == 0

    heat = explorer.locator("img").first                    # L | up(L) over the image | Guided Grad-CAM
    sync_api.expect(heat).to_be_visible()
    heat_src0 = heat.get_attribute("src")
    assert heat_src0

    # (1) the class: mouse and keyboard on the rendered dropdown (a <select>): open it, one class down, Enter
    select = explorer.locator(".widget-dropdown select").first
    before = select.input_value()
    labels, i = select.evaluate("s => [[...s.options].map(o => o.text), s.selectedIndex]")
    select.click()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    try:
        sync_api.expect(select).not_to_have_value(before, timeout=5_000)
        how = "mouse + keyboard"
    except AssertionError:        # the keys did not reach the list: choose on the rendered control instead
        page.keyboard.press("Escape")
        select.select_option(index=(i + 1) % len(labels))
        sync_api.expect(select).not_to_have_value(before)
        how = "select_option"
    sync_api.expect(heat).not_to_have_attribute("src", heat_src0)          # heatmap re-rendered by the kernel

    # (2) the step: keyboard on the step slider's handle, then the mouse on the "next term" button
    stepper = explorer.locator(".xr-stepper")
    picture = stepper.locator("img").first
    step_readout = stepper.locator(".widget-readout").first
    sync_api.expect(step_readout).to_have_text("1")
    pic_src0 = picture.get_attribute("src")
    stepper.locator(".widget-slider .noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    sync_api.expect(step_readout).to_have_text("2")
    sync_api.expect(picture).not_to_have_attribute("src", pic_src0)
    pic_src1 = picture.get_attribute("src")
    stepper.locator("button", has_text="▶").first.click()
    sync_api.expect(step_readout).to_have_text("3")
    sync_api.expect(stepper).to_contain_text("step 3 of")
    sync_api.expect(picture).not_to_have_attribute("src", pic_src1)

    assert page.get_by_text("Error displaying widget").count() == 0
    assert page.get_by_text("Loading widget").count() == 0

    shots = tmp / "screenshots"
    shots.mkdir(exist_ok=True)
    cell.locator(".jp-InputPrompt").first.click()   # activate it, else Lab scrolls back to the active cell
    explorer.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "lab_page.png"))
    explorer.screenshot(path=str(shots / "grad_cam_explorer.png"))   # element shot: always in view
    assert not page.errors, page.errors
    print(f"[browser] run-all {t_run:.1f}s, whole test {time.time() - t0:.1f}s; class changed by {how}; "
          f"screenshots: {shots / 'grad_cam_explorer.png'} and {shots / 'lab_page.png'}")


# --- the human-study quiz (widgets.quiz.HumanStudy) in a tiny notebook ------------------------------------

QUIZ_CELL = """from widgets.quiz import HumanStudy
quiz = HumanStudy({path!r}, student="browser test", seed=0, n_trials=2)
quiz"""


def _quiz_notebook(folder: pathlib.Path, answers: pathlib.Path) -> str:
    """Write a one-cell notebook showing the quiz under ``folder`` (inside the served root); its path
    relative to the root."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(QUIZ_CELL.format(path=str(answers)))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, folder / "quiz.ipynb")
    return str((folder / "quiz.ipynb").relative_to(ROOT))


def test_quiz_in_jupyterlab(lab, page, tmp):
    """Open a notebook showing the quiz, answer every trial by clicking the rendered buttons, and check
    the counter advances, the answers reach the JSON file and the score appears."""
    import json

    base, token = lab
    (ROOT / "build").mkdir(exist_ok=True)            # git-ignored; the notebook must lie under Lab's root
    folder = pathlib.Path(tempfile.mkdtemp(prefix="quiz-", dir=ROOT / "build"))
    answers = tmp / "quiz_answers.json"
    shots = tmp / "screenshots"
    shots.mkdir(exist_ok=True)
    try:
        notebook = _quiz_notebook(folder, answers)
        page.goto(f"{base}/lab/tree/{notebook}?token={token}&reset")
        page.wait_for_function("""() => /\\|\\s*Idle/.test(
            (document.querySelector('#jp-main-statusbar') || {}).innerText?.replace(/\\n/g, ' | ') || '')""")
        menu(page, "Run", "Run All Cells")
        quiz = page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".xr-quiz")
        sync_api.expect(quiz).to_be_visible(timeout=60_000)
        sync_api.expect(quiz).to_contain_text("trial 1 of 4")
        assert page.get_by_text("Error displaying widget").count() == 0
        visual = quiz.locator("img").nth(1)                       # the visualization of trial 1
        src0 = visual.get_attribute("src")
        assert src0

        buttons = quiz.locator("button.widget-button")
        for i in range(4):
            sync_api.expect(quiz).to_contain_text(f"trial {i + 1} of 4")
            if i == 2:                                            # the first trust trial: model A and model B
                sync_api.expect(quiz.locator("img").nth(2)).to_be_visible()
                quiz.evaluate("e => e.scrollIntoView({block: 'start'})")
                quiz.screenshot(path=str(shots / "quiz_trust_trial.png"))
            buttons.nth(i % 2).click()
            if i == 0:
                sync_api.expect(quiz).to_contain_text("trial 2 of 4")
                sync_api.expect(visual).not_to_have_attribute("src", src0)   # the next trial was drawn
                quiz.screenshot(path=str(shots / "quiz_trial_2.png"))
        sync_api.expect(quiz).to_contain_text("done: 4 of 4 trials answered")
        sync_api.expect(quiz).to_contain_text("Your score")
        quiz.screenshot(path=str(shots / "quiz_score.png"))

        saved = json.loads(answers.read_text())
        assert saved["student"] == "browser test" and [r["trial"] for r in saved["records"]] == [0, 1, 2, 3]
        assert page.get_by_text("Error displaying widget").count() == 0
        assert not page.errors, page.errors
        print(f"[browser] quiz screenshots: {shots / 'quiz_trial_2.png'}, {shots / 'quiz_trust_trial.png'}, "
              f"{shots / 'quiz_score.png'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the stepper's worked equation ("With this image's numbers"), typeset by MathJax --------------------

WORKED_CELL = """from widgets import GradCAMExplorer
explorer = GradCAMExplorer()      # the shapes NIN: fast on a CPU
explorer"""


def _worked_box(stepper):
    """The stepper's worked-equation box: the HTMLMath widget that says "With this image's numbers" (the
    equation list above it is another HTMLMath, without that text)."""
    return stepper.locator(".widget-htmlmath", has_text="With this image's numbers")


def _typeset(box) -> dict:
    """What MathJax made of the box: its output elements, their HTML, the text left outside them, and errors."""
    return box.evaluate("""b => {
        const mjx = [...b.querySelectorAll('mjx-container')];
        const outside = b.cloneNode(true);
        outside.querySelectorAll('mjx-container').forEach(m => m.remove());
        return {n: mjx.length, display: mjx.filter(m => m.getAttribute('display') === 'true').length,
                html: mjx.map(m => m.innerHTML).join('|'),
                // the assistive MathML MathJax adds: the typeset formula as text (e.g. "α7c=1Z∑i∑j...=0.08212")
                math: mjx.map(m => (m.querySelector('mjx-assistive-mml') || {}).textContent || '').join('|'),
                outside: outside.innerText,
                errors: b.querySelectorAll('mjx-merror, [data-mjx-error]').length,
                width: Math.max(0, ...mjx.map(m => m.scrollWidth)), box: b.clientWidth};
    }""")


def test_worked_equation_typeset_in_jupyterlab(lab, page, tmp):
    """A Grad-CAM explorer (shapes NIN) in a one-cell notebook: the stepper's worked equation is typeset by
    MathJax (an ``mjx-container`` in display mode inside the box, no TeX source or ``$$`` left as text, no
    MathJax error) and is typeset again, differently, when the step moves (keyboard on the slider, then ▶)."""
    base, token = lab
    t0 = time.time()
    (ROOT / "build").mkdir(exist_ok=True)            # git-ignored; the notebook must lie under Lab's root
    folder = pathlib.Path(tempfile.mkdtemp(prefix="worked-", dir=ROOT / "build"))
    shots = tmp / "screenshots"
    shots.mkdir(exist_ok=True)
    try:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(WORKED_CELL)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                     "language": "python"}
        nbformat.write(nb, folder / "worked.ipynb")
        notebook = str((folder / "worked.ipynb").relative_to(ROOT))
        page.goto(f"{base}/lab/tree/{notebook}?token={token}&reset")
        page.wait_for_function("""() => /\\|\\s*Idle/.test(
            (document.querySelector('#jp-main-statusbar') || {}).innerText?.replace(/\\n/g, ' | ') || '')""")
        menu(page, "Run", "Run All Cells")
        cell = page.locator(".jp-Notebook .jp-Cell").nth(0)
        stepper = cell.locator(".xr-explorer .xr-stepper")
        sync_api.expect(stepper).to_be_visible(timeout=90_000)
        assert page.get_by_text("Error displaying widget").count() == 0
        box = _worked_box(stepper)
        sync_api.expect(box).to_have_count(1)
        readout = stepper.locator(".widget-readout").first
        sync_api.expect(readout).to_have_text("1")

        def typeset_step(step: int, symbol: str) -> dict:
            sync_api.expect(readout).to_have_text(str(step))
            sync_api.expect(stepper).to_contain_text(f"step {step} of")
            sync_api.expect(box.locator("mjx-container[display='true']")).to_have_count(1)
            page.wait_for_function("""b => !/\\$\\$|\\\\frac|\\\\mathtt|\\\\text\\{/.test(b.innerText)""",
                                   arg=box.element_handle())
            t = _typeset(box)
            assert t["n"] == 1 and t["display"] == 1 and t["errors"] == 0, (step, t)
            assert t["html"].strip() and "$$" not in t["outside"] and "\\" not in t["outside"], (step, t)
            value = re.search(r"the trace's value: (\S+) ✓", t["outside"])
            assert value, (step, t["outside"])          # the check under the equation agrees
            assert t["math"].endswith("=" + value[1]), (step, t["math"], value[1])   # typeset: "... = result"
            assert symbol in stepper.locator(".widget-html").first.inner_text()       # the header's term
            return t

        shown = [typeset_step(1, "A")]
        stepper.locator(".widget-slider .noUi-handle").first.focus()            # keyboard on the slider
        page.keyboard.press("ArrowRight")
        shown.append(typeset_step(2, "dY_dA"))
        stepper.locator("button", has_text="▶").first.click()                   # the mouse on ▶
        shown.append(typeset_step(3, "alpha"))
        for (a, b) in zip(shown, shown[1:]):
            assert a["html"] != b["html"], "the typeset worked equation did not change with the step"
            assert a["math"] != b["math"]
        assert "164(" in shown[2]["math"]     # alpha: \frac{1}{64}(...), Z = 8 x 8 cells of block3_pool

        assert page.get_by_text("Error displaying widget").count() == 0
        cell.locator(".jp-InputPrompt").first.click()   # activate it, else Lab scrolls back to the active cell
        stepper.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        stepper.screenshot(path=str(shots / "worked_equation_step3.png"))
        assert not page.errors, page.errors
        print(f"[browser] worked equation typeset at steps 1-3 in {time.time() - t0:.1f}s; "
              f"screenshot: {shots / 'worked_equation_step3.png'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
