"""Write schema/ from metastore/models.py: `python scripts/generate_schema.py`."""

from pathlib import Path

from metastore.schemagen import render

SCHEMA = Path(__file__).resolve().parent.parent / "schema"

if __name__ == "__main__":
    for name, content in render().items():
        (SCHEMA / name).write_text(content)
        print(f"wrote schema/{name}")
