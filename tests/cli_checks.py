"""What every command-line mistake must look like: usage mistakes exit 2, failures exit 1, never a traceback."""


def assert_usage_error(result, message):
    """click's usage error: exit 2, its short usage line, and one ``Error:`` line holding ``message``."""
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert lines[0].startswith("Usage: ") and lines[-1].startswith("Error: "), result.output
    assert sum(line.startswith("Error: ") for line in lines) == 1 and message in lines[-1], result.output


def assert_failure(result, message):
    """A runtime failure: exit 1 and exactly one ``Error:`` line holding ``message``."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
