"""Build hook only (the metadata is pyproject.toml's): the wheel carries the JSON Schemas.

schemas/ at the top of the repository is the single source of truth; tsegossip.schemas reads it there in
a checkout. An installed tsegossip has no checkout, so the build copies schemas/*.json into the package
as tsegossip/_schemas/, where tsegossip.schemas finds them with importlib.resources. MANIFEST.in puts
schemas/ into the sdist, so a wheel built from the sdist (as pip builds one) carries them too.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SCHEMAS = Path(__file__).resolve().parent / "schemas"


class build_py_with_schemas(build_py):
    def run(self) -> None:
        super().run()
        if not self._copies_schemas():
            return
        if not self._schemas():
            raise SystemExit(f"setup.py: no JSON Schemas in {SCHEMAS}: the wheel would not validate a spec")
        self.mkpath(str(self._target()))
        for src in self._schemas():
            self.copy_file(str(src), str(self._target() / src.name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self._copies_schemas():
            outputs += [str(self._target() / src.name) for src in self._schemas()]
        return outputs

    def _copies_schemas(self) -> bool:
        # An editable install runs from the checkout, which reads schemas/ itself.
        return not getattr(self, "editable_mode", False)

    def _schemas(self) -> list[Path]:
        return sorted(SCHEMAS.glob("*.json"))

    def _target(self) -> Path:
        return Path(self.build_lib) / "tsegossip" / "_schemas"


setup(cmdclass={"build_py": build_py_with_schemas})
