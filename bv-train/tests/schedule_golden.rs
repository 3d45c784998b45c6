//! Schedules and parameter groups against `tests/golden/optim/*/meta.json`, written by
//! big_vision's `optax.make` (multipliers per update; README tolerance rtol 1e-6).

use std::path::Path;

use bv_core::{Array, Tensor};
use bv_train::config::ScheduleConfig;
use bv_train::optim::schedule::{Schedule, ScheduleGroups};
use serde_json::Value;

const CASES: &[&str] = &[
    "adam_bf16_cosine",
    "momentum_hp_linear",
    "adafactor_rsqrt_frozen",
    "sgd_stair_groups",
];

fn meta(case: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/optim")
        .join(case)
        .join("meta.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn multipliers_match_big_vision_per_update() {
    for case in CASES {
        let m = meta(case);
        let config: ScheduleConfig =
            serde_json::from_value(m["config"]["schedule"].clone()).unwrap();
        let total = m["sched_kw"]["total_steps"].as_u64().unwrap();
        let groups = ScheduleGroups::new(Some(&config), total, None, None).unwrap();
        let scheduled: Vec<_> = groups.groups().filter_map(|(_, s)| s).collect();
        for entry in m["schedules"].as_array().unwrap() {
            let i = entry["schedule_index"].as_u64().unwrap() as usize;
            for (t, want) in entry["mult_per_update"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                let want = want.as_f64().unwrap();
                let got = scheduled[i].at(t as f64);
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs() + 1e-7,
                    "{case} schedule {i} update {t}: {got} vs {want}"
                );
            }
        }
    }
}

/// The same schedules traced and run through XLA in float32, as big_vision's are.
#[test]
fn traced_multipliers_match_big_vision() {
    for case in CASES {
        let m = meta(case);
        let config: ScheduleConfig =
            serde_json::from_value(m["config"]["schedule"].clone()).unwrap();
        let total = m["sched_kw"]["total_steps"].as_u64().unwrap();
        let groups = ScheduleGroups::new(Some(&config), total, None, None).unwrap();
        let scheduled: Vec<Schedule> = groups.groups().filter_map(|(_, s)| s.cloned()).collect();
        for entry in m["schedules"].as_array().unwrap() {
            let s = scheduled[entry["schedule_index"].as_u64().unwrap() as usize].clone();
            let f = bv_core::jit(move |t: Tensor| s.at(t));
            for (t, want) in entry["mult_per_update"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                let want = want.as_f64().unwrap() as f32;
                let step = Array::scalar(t as f32).unwrap();
                let got = f.call(&step).unwrap().item::<f32>().unwrap();
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs() + 1e-7,
                    "{case} update {t}: traced {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn parameters_fall_in_the_same_groups() {
    for case in CASES {
        let m = meta(case);
        let config: ScheduleConfig =
            serde_json::from_value(m["config"]["schedule"].clone()).unwrap();
        let groups = ScheduleGroups::new(Some(&config), 6, None, None).unwrap();
        let all: Vec<_> = groups.groups().collect();
        for (name, g) in m["param_groups"].as_object().unwrap() {
            let i = groups.group_of(name).unwrap();
            let frozen = all[i].1.is_none();
            assert_eq!(frozen, g["frozen"].as_bool().unwrap(), "{case} {name}");
            if !frozen {
                // big_vision numbers only the scheduled (non-frozen) groups.
                let index = all[..i].iter().filter(|(_, s)| s.is_some()).count();
                assert_eq!(
                    index as u64,
                    g["schedule_index"].as_u64().unwrap(),
                    "{case} {name}"
                );
            }
        }
        let logged = groups.logged(1);
        assert_eq!(logged[0].0, "global_schedule");
    }
}
