"""Settings: the crmkit.toml file, environment overrides, and errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

import crmkit
from crmkit.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No crmkit variables from the developer's shell, and no ./crmkit.toml around."""
    monkeypatch.delenv("CRMKIT_CONFIG", raising=False)
    monkeypatch.delenv("CRMKIT_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_settings_are_read_from_a_toml_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "crmkit.toml",
        """
        [crmkit]
        database_url = "postgresql+psycopg://crm@db.example/crm"
        default_region = "tw"
        echo_sql = true

        [[crmkit.custom_fields]]
        entity = "contact"
        name = "wechat_id"
        type = "text"

        [crmkit.relay]
        max_attempts = 3

        [plugins.loyalty]
        points_per_yuan = 2
        """,
    )

    settings = Settings.load(config)

    assert settings.database_url == "postgresql+psycopg://crm@db.example/crm"
    assert (settings.default_region, settings.echo_sql) == ("TW", True)
    assert [(f.entity, f.name, f.type) for f in settings.custom_fields] == [
        ("contact", "wechat_id", crmkit.FieldType.TEXT)
    ]
    assert settings.relay.max_attempts == 3
    assert settings.plugins == {"loyalty": {"points_per_yuan": 2}}
    assert settings.config_path == config


def test_an_unknown_setting_is_a_config_error_naming_it(tmp_path: Path) -> None:
    config = write(tmp_path / "crmkit.toml", '[crmkit]\ndatabase_ulr = "sqlite:///x.db"\n')

    with pytest.raises(crmkit.ConfigError, match=r"unknown setting crmkit\.database_ulr"):
        Settings.load(config)


def test_an_unknown_table_is_a_config_error_naming_it(tmp_path: Path) -> None:
    config = write(tmp_path / "crmkit.toml", '[crmkt]\ndatabase_url = "sqlite:///x.db"\n')

    with pytest.raises(crmkit.ConfigError, match=r"unknown table \[crmkt\]"):
        Settings.load(config)


def test_an_unknown_relay_setting_is_a_config_error_naming_it(tmp_path: Path) -> None:
    config = write(tmp_path / "crmkit.toml", "[crmkit.relay]\nmax_attempt = 3\n")

    with pytest.raises(crmkit.ConfigError, match="max_attempt"):
        Settings.load(config)


def test_an_unknown_default_region_is_a_config_error(tmp_path: Path) -> None:
    config = write(tmp_path / "crmkit.toml", '[crmkit]\ndefault_region = "China"\n')

    with pytest.raises(crmkit.ConfigError, match=r"default_region 'CHINA'.*such as CN"):
        Settings.load(config)


def test_echo_sql_must_be_a_boolean(tmp_path: Path) -> None:
    config = write(tmp_path / "crmkit.toml", '[crmkit]\necho_sql = "false"\n')

    with pytest.raises(crmkit.ConfigError, match="echo_sql must be true or false"):
        Settings.load(config)


def test_the_api_access_log_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    assert Settings().api.access_log is True
    config = write(tmp_path / "crmkit.toml", "[crmkit.api]\naccess_log = false\n")
    assert Settings.load(config).api.access_log is False


def test_the_api_access_log_must_be_a_boolean(tmp_path: Path) -> None:
    config = write(tmp_path / "crmkit.toml", '[crmkit.api]\naccess_log = "no"\n')

    with pytest.raises(crmkit.ConfigError, match="access_log must be true or false"):
        Settings.load(config)


def test_invalid_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    config = write(tmp_path / "crmkit.toml", "[crmkit\n")

    with pytest.raises(crmkit.ConfigError, match="not valid TOML") as error:
        Settings.load(config)

    assert str(config) in str(error.value)


def test_a_relative_sqlite_path_is_read_next_to_the_config_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "site" / "crmkit.toml", '[crmkit]\ndatabase_url = "sqlite:///data/crm.db"\n'
    )

    settings = Settings.load(config)

    assert settings.database_url == f"sqlite:///{tmp_path / 'site' / 'data' / 'crm.db'}"


def test_an_absolute_sqlite_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "crm.db"
    config = write(
        tmp_path / "site" / "crmkit.toml", f'[crmkit]\ndatabase_url = "sqlite:///{target}"\n'
    )

    assert Settings.load(config).database_url == f"sqlite:///{target}"


def test_the_database_url_from_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "crmkit.toml", '[crmkit]\ndatabase_url = "sqlite:///file.db"\n')
    monkeypatch.setenv("CRMKIT_DATABASE_URL", "postgresql+psycopg://crm@db.example/crm")

    assert Settings.load(config).database_url == "postgresql+psycopg://crm@db.example/crm"


def test_an_explicit_database_url_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRMKIT_DATABASE_URL", "postgresql+psycopg://crm@db.example/crm")

    settings = Settings.load(database_url="postgresql+psycopg://other@db.example/crm")

    assert settings.database_url == "postgresql+psycopg://other@db.example/crm"


def test_the_config_file_can_be_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "conf" / "crm.toml", '[crmkit]\ndefault_region = "HK"\n')
    monkeypatch.setenv("CRMKIT_CONFIG", str(config))

    assert Settings.load().default_region == "HK"


def test_crmkit_toml_in_the_working_folder_is_read_by_default(tmp_path: Path) -> None:
    write(tmp_path / "crmkit.toml", '[crmkit]\ndefault_region = "US"\n')

    settings = Settings.load()

    assert (settings.default_region, settings.config_path) == ("US", Path("crmkit.toml"))


def test_without_any_config_file_the_defaults_apply() -> None:
    settings = Settings.load()

    assert (settings.database_url, settings.default_region) == ("sqlite:///crmkit.db", "CN")
    assert settings.config_path is None


def test_an_explicit_config_file_that_does_not_exist_is_a_config_error_with_the_fix(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere.toml"

    with pytest.raises(crmkit.ConfigError) as error:
        Settings.load(missing)

    assert str(error.value) == (
        f"config file {missing} does not exist: create it with 'crmkit --config {missing} init'"
    )


def test_a_missing_config_file_named_by_the_environment_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMKIT_CONFIG", str(tmp_path / "gone.toml"))

    with pytest.raises(crmkit.ConfigError, match=r"gone\.toml does not exist"):
        Settings.load()


def test_crmkit_open_reads_the_config_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "crmkit.toml",
        '[crmkit]\ndatabase_url = "sqlite:///crm.db"\ndefault_region = "TW"\n',
    )

    with crmkit.open(config=str(config), discover=False, upgrade=True) as crm:
        contact = crm.contacts.create({"full_name": "陳美玲", "phone": "02 2345 6789"})

    assert contact.phone == "+886223456789"
    assert (tmp_path / "crm.db").exists()


@pytest.mark.parametrize(
    ("specs", "raw", "expected"),
    [
        ([crmkit.SettingSpec("rate", int, default=1)], {}, {"rate": 1}),
        ([crmkit.SettingSpec("rate", int, default=1)], {"rate": 5}, {"rate": 5}),
        ([crmkit.SettingSpec("rate", float)], {"rate": 2}, {"rate": 2.0}),
    ],
    ids=["default", "given", "int-widened-to-float"],
)
def test_plugin_settings_fill_defaults_and_keep_given_values(
    specs: list[crmkit.SettingSpec], raw: dict[str, object], expected: dict[str, object]
) -> None:
    settings = Settings.from_mapping({"plugins": {"loyalty": raw}})

    assert settings.plugin_settings("loyalty", specs) == expected


@pytest.mark.parametrize(
    ("specs", "raw", "message"),
    [
        ([crmkit.SettingSpec("rate", int)], {"rat": 1}, r"unknown setting plugins\.loyalty\.rat"),
        ([crmkit.SettingSpec("rate", int)], {"rate": "5"}, "must be int, got str"),
        ([crmkit.SettingSpec("rate", int)], {"rate": True}, "must be int, got bool"),
        ([crmkit.SettingSpec("rate", int, required=True)], {}, "rate is required"),
    ],
)
def test_bad_plugin_settings_are_config_errors_naming_the_setting(
    specs: list[crmkit.SettingSpec], raw: dict[str, object], message: str
) -> None:
    settings = Settings.from_mapping({"plugins": {"loyalty": raw}})

    with pytest.raises(crmkit.ConfigError, match=message):
        settings.plugin_settings("loyalty", specs)
