"""Settings of the demo API process, from DEMO_API_* variables and command-line flags."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from demoapi.dataset import DEFAULT_END
from demoapi.faults import Faults


class DemoApiSettings(BaseSettings, Faults):
    """Where to listen, which dataset to generate, and the fault knobs (inherited)."""

    model_config = SettingsConfigDict(env_prefix="DEMO_API_", frozen=True)

    host: str = Field(default="127.0.0.1", description="interface to listen on")
    port: int = Field(default=8899, ge=0, le=65535, description="TCP port, 0 = any free port")
    size: int = Field(default=100_000, ge=1, description="number of replays")
    seed: int = Field(default=7, description="seed of the generated dataset")
    days: int = Field(default=30, ge=1, description="days the replays are spread over")
    end: int = Field(default=DEFAULT_END, description="unix time the newest replay comes before")
    tie_seconds: int = Field(
        default=1, ge=1, description="upload times rounded down to this many seconds (ties)"
    )

    def faults(self) -> Faults:
        """Return the fault knobs alone, as the app takes them."""
        return Faults(**self.model_dump(include=set(Faults.model_fields)))
