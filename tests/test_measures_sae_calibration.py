"""The SAE calibration table (superlens.measures.sae_calibration) as the code reads it."""
import json

import pytest

from superlens.measures import sae_calibration as cal


def _table(tmp_path, met: dict, widths: dict, name="t.json"):
    t = {"command": "superlens sweep x.toml", "targets": cal.TARGETS,
         "measured": {"planted_median_abs_error": 0.08, "planted_max_abs_error": 0.21,
                      "planted_rho": 0.97, "tms_r_entropy": 0.90, "tms_rho_count": 0.93,
                      "seed_spread": 0.02},
         "met": met, "targets_met": all(met.values()) and bool(met), "widths": widths}
    p = tmp_path / name
    p.write_text(json.dumps(t))
    return p


W_OK = {"median_ratio": 1.05, "median_abs_error": 0.06, "max_abs_error": 0.2, "settings": 6,
        "seed_spread": 0.01, "ok": True}
W_BAD = {"median_ratio": 1.4, "median_abs_error": 0.4, "max_abs_error": 0.9, "settings": 6,
         "seed_spread": 0.03, "ok": False}


def test_checked_in_table_is_readable_and_consistent():
    t = cal.load_calibration()
    assert cal.targets_met() == bool(t["targets_met"])
    # targets_met is the conjunction of the per-target booleans it was written from
    assert t["targets_met"] == (bool(t["met"]) and all(t["met"].values()))
    for w in (16, 128, 512):
        note = cal.calibration_note(w)
        assert note["width"] == w and isinstance(note["reason"], str) and note["reason"]
        assert note["trusted"] is False or t["targets_met"]
    assert isinstance(cal.calibration_text(), str)
    # the checked-in table says, per width, whether the latents were the planted features
    n512 = cal.calibration_note(512)
    assert n512["median_recovered"] == t["widths"]["512"]["median_recovered"]
    assert 0.0 <= n512["median_mcc"] <= 1.0


def test_trusted_only_when_every_target_met_and_width_near(tmp_path):
    good = _table(tmp_path, {"planted_error": True, "tms_r_entropy": True},
                  {"64": W_OK, "512": W_BAD}, "good.json")
    assert cal.targets_met(good) is True
    assert cal.calibration_note(64, good)["trusted"] is True
    assert cal.calibration_note(100, good)["calibrated_width"] == 64  # log-nearest: 100/64 < 512/100
    assert cal.calibration_note(100, good)["trusted"] is True
    n512 = cal.calibration_note(512, good)
    assert n512["trusted"] is False and "0.400" in n512["reason"] and n512["median_ratio"] == 1.4
    assert "median_mcc" not in n512  # a table written before MCC was measured has none
    far = cal.calibration_note(8, good)  # 64 / 8 > WIDTH_FACTOR
    assert far["trusted"] is False and "factor" in far["reason"]
    missed = _table(tmp_path, {"planted_error": True, "tms_r_entropy": False}, {"64": W_OK}, "m.json")
    assert cal.targets_met(missed) is False
    note = cal.calibration_note(64, missed)
    assert note["trusted"] is False and cal.TARGET_WORDS["tms_r_entropy"] in note["reason"]
    assert cal.TARGET_WORDS["tms_r_entropy"] in cal.calibration_text(missed) and "never decide" in cal.calibration_text(missed)


def test_bad_tables_are_one_line_errors(tmp_path):
    with pytest.raises(cal.CalibrationError, match="not found"):
        cal.load_calibration(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(cal.CalibrationError, match="unreadable"):
        cal.load_calibration(tmp_path / "bad.json")
    (tmp_path / "part.json").write_text("{}")
    with pytest.raises(cal.CalibrationError, match="missing key"):
        cal.load_calibration(tmp_path / "part.json")
    with pytest.raises(ValueError, match="width"):
        cal.calibration_note(0)


def test_active_study_reads_the_table():
    from superlens.active.sae_measures import sae_validated, sae_validation_note

    assert sae_validated() == cal.targets_met()
    assert sae_validation_note().startswith("validated." if cal.targets_met() else "not validated.")


def test_a_fit_that_left_more_unexplained_than_any_calibrated_setting_is_not_trusted(tmp_path):
    p = _table(tmp_path, {"planted_error": True, "tms_r_entropy": True}, {"64": W_OK}, "f.json")
    t = json.loads(p.read_text())
    t["fvu_max"] = 0.3
    p.write_text(json.dumps(t))
    assert cal.calibration_note(64, p, fvu=0.1)["trusted"] is True
    bad = cal.calibration_note(64, p, fvu=0.39)
    assert bad["trusted"] is False and "0.39" in bad["reason"] and "did not fit" in bad["reason"]
    assert cal.calibration_note(64, p, fvu=float("nan"))["trusted"] is False
