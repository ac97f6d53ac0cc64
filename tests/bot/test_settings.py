from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, read_env_file


def test_defaults_serve_a_laptop() -> None:
    settings = Settings.from_env({}, env_file=None)
    assert (settings.host, settings.port) == ("127.0.0.1", 3978)
    assert settings.model == "embedded"
    assert settings.storage.startswith("sqlite:///")
    assert settings.anonymous


def test_environment_names_and_types() -> None:
    settings = Settings.from_env(
        {
            "MicrosoftAppId": "app-1",
            "MicrosoftAppPassword": "s3cret",
            "MicrosoftAppType": "singletenant",
            "MicrosoftAppTenantId": "tenant-1",
            "BOTLOOM_PORT": "4000",
            "BOTLOOM_TEMPERATURE": "0",
            "BOTLOOM_STOP": "</s>,User:",
            "BOTLOOM_CACHE_DIR": "~/models",
            "UNRELATED": "x",
        },
        env_file=None,
    )
    assert settings.app_id == "app-1" and not settings.anonymous
    assert settings.app_type == "SingleTenant"
    assert settings.port == 4000 and settings.temperature == 0.0
    assert settings.stop == ("</s>", "User:")
    assert settings.cache_dir == Path.home() / "models"
    config = settings.bot_framework_config()
    assert (config.APP_ID, config.APP_PASSWORD, config.APP_TENANTID) == (
        "app-1",
        "s3cret",
        "tenant-1",
    )


def test_password_never_in_repr() -> None:
    settings = Settings.from_env({"MicrosoftAppPassword": "s3cret"}, env_file=None)
    assert "s3cret" not in repr(settings)


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        '# comment\nBOTLOOM_PORT=5000\nexport BOTLOOM_MODEL="my/model"\n\nBOTLOOM_HOST=0.0.0.0\n'
    )
    assert read_env_file(env)["BOTLOOM_MODEL"] == "my/model"
    settings = Settings.from_env({"BOTLOOM_PORT": "6000"}, env_file=env)
    assert (settings.port, settings.model, settings.host) == (6000, "my/model", "0.0.0.0")


@pytest.mark.parametrize(
    ("name", "value"),
    [("BOTLOOM_PORT", "eighty"), ("BOTLOOM_TEMPERATURE", "hot"), ("MicrosoftAppType", "Personal")],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value}, env_file=None)
