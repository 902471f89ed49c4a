"""The CRM's rules: phones, settings, segments, history, alerts, the screen-pop card, wrap-ups and CSV.

Kept light on purpose (appliance.config imports the settings): import the modules you need.
"""

from appliance.crm.settings import MOODS, UPSET, CrmError, CrmSettings, SegmentRule, load_crm_settings

__all__ = ["MOODS", "UPSET", "CrmError", "CrmSettings", "SegmentRule", "load_crm_settings"]
