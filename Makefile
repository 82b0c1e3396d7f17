# The two commands a newcomer needs: `make demo` and `make test`. Both create or update .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install browser demo demo-model test test-shuffled bench dist clean

# Installed without their dependencies, pinned: grad-cam (the Grad-CAM reference) asks for opencv-python, which would
# clash with the headless wheel; facenet-pytorch (MTCNN, the face detector) pins torch<2.3, numpy<2 and Pillow<10.3
# in its metadata, yet runs unchanged on the versions in requirements.txt (tests/test_faces.py).
$(STAMP): requirements.txt pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps grad-cam==1.5.7 facenet-pytorch==2.6.0
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# The browser test drives Debian's Chromium through Playwright; where it cannot be installed the test skips.
browser:
	@test -x /usr/bin/chromium || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser test will skip")

demo-model: install
	$(VENV)/bin/memorability demo-model

demo: demo-model
	$(PY) space/app.py

# In file order (pytest-randomly off): the order that groups module fixtures best, the fastest run. test-shuffled runs
# the same suite in a random order, its seed printed (SEED=N repeats one): no test may depend on another's leftovers.
test: install browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -p no:randomly

test-shuffled: install browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -p randomly $(if $(SEED),--randomly-seed=$(SEED))

# Bench-only peers, measured side by side with ours: ResMem (bench/inference.py) and faiss (bench/neighbours.py);
# bench/faces.py needs nothing more (OpenCV's Haar cascade comes with opencv-python-headless 4.x). torchao, the other
# int8 route (bench/int8_routes.py), goes into a folder of its own: in .venv, transformers would import it and warn.
bench: install
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps resmem==1.1.6 faiss-cpu==1.15.1
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target $(VENV)/torchao-apart torchao==0.18.0
	$(PY) bench/run_all.py

dist: install
	rm -rf dist
	$(PY) -m pip install --quiet --disable-pip-version-check build==1.6.1 twine==7.0.0
	$(PY) -m build --no-isolation --outdir dist .
	$(PY) -m twine check dist/*

clean:
	rm -rf build dist *.egg-info .pytest_cache artifacts
