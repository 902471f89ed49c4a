"""The local web application: CRM, agent console and screen pop."""
