"""Box settings and the provisioning file, parsed from TOML and validated strictly.

Storage-free on purpose: applying a Provisioning to the database lives in
appliance.provisioning. Every problem raises ConfigError naming the file, the
key path and what was wrong; unknown keys are errors so typos never pass silently.
"""

from .checks import CLI, MAX_PROMPT_TEXT, SETTINGS_FILE, SYSTEM_DATA_DIR, ConfigError
from .provisioning import ExtensionConfig, Provisioning, SecurityConfig, TrunkConfig, load_provisioning, weak_secret_reason
from .settings import Settings, default_data_dir, load_settings

__all__ = ["CLI", "MAX_PROMPT_TEXT", "SETTINGS_FILE", "SYSTEM_DATA_DIR", "ConfigError", "ExtensionConfig",
           "Provisioning", "SecurityConfig", "Settings", "TrunkConfig", "default_data_dir", "load_provisioning",
           "load_settings", "weak_secret_reason"]
