"""Provisioning text shared by the tests: the office's people, written once."""

NAMES = {"201": "Ann", "202": "Bob", "203": "Cleo"}


def extensions(secrets: dict[str, str], *numbers: str, **extra: str) -> str:
    """[[extensions]] tables for these numbers (names from NAMES); x203='allow_external = false' adds a line to 203's."""
    return "".join(f'\n[[extensions]]\nnumber = "{n}"\nname = "{NAMES[n]}"\nsecret = "{secrets[n]}"\n'
                   + (extra[f"x{n}"] + "\n" if f"x{n}" in extra else "") for n in numbers or tuple(secrets))


ANN_AND_BOB = extensions({"201": "s3cret-201", "202": "b0b-likes-tea"})
