"""A user validator for the tests: ``value`` must not be the string 'forbidden'."""


def no_forbidden(data):
    if data.get("value") == "forbidden":
        raise ValueError("value may not be 'forbidden'")
    return data
