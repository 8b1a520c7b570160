//! Real receipts for the CLI tests: the real `confirmation` hub seals and certifies, the real
//! `confirmation_node` Wasm (one node per scheme, two subnets) signs, on the emulator.

#![allow(dead_code)]

use ic_emulator::{Emulator, SubnetKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use stratros::emu::{self, LOCAL_KEY_NAME};
use stratros::wasm::WasmDir;
use stratros_confirmation::{PolicyNode, Receipt, Scheme};

pub struct Fixture {
    pub dir: PathBuf,
    pub trust: PathBuf,
    pub receipts: Vec<PathBuf>,
    pub emulator_time_nanos: u64,
    pub root_key_hex: String,
    _tmp: tempfile::TempDir,
}

pub fn wasm_dir() -> WasmDir {
    WasmDir::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../out"))
}

/// One batch of 5 records confirmed by all four schemes (nodes on two subnets).
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let wasm = wasm_dir();
        let node_wasm = wasm
            .read("confirmation_node")
            .expect("out/confirmation_node.wasm");
        let hub_wasm = wasm.read("confirmation").expect("out/confirmation.wasm");
        let mut emu = Emulator::new();
        let app = emu.subnet_of_kind(SubnetKind::Application);
        let fid = emu.subnet_of_kind(SubnetKind::Fiduciary);
        let hub =
            emu::install_hub(&mut emu, app, &hub_wasm, Default::default()).expect("hub installs");
        for (i, scheme) in Scheme::ALL.into_iter().enumerate() {
            let subnet = if i < 2 { fid } else { app };
            let node = emu::install_node(&mut emu, subnet, &node_wasm, scheme, LOCAL_KEY_NAME, hub)
                .expect("node");
            emu::register_node(
                &mut emu,
                hub,
                PolicyNode {
                    node,
                    scheme,
                    key_name: LOCAL_KEY_NAME.into(),
                },
            )
            .expect("registered");
        }
        let submitter = candid::Principal::self_authenticating(b"cli test service");
        emu::add_submitter(&mut emu, hub, submitter).expect("authorized");
        let inputs: Vec<_> = (0..5)
            .map(|i| emu::record_input("inference", &format!("ref-{i}"), &format!("record {i}")))
            .collect();
        emu::submit(&mut emu, hub, submitter, &inputs)
            .expect("submit")
            .expect("accepted");
        let height = emu::seal_now(&mut emu, hub).expect("sealed");
        emu::wait_confirmed(&mut emu, hub, height).expect("confirmed");
        let receipts: Vec<Receipt> = (0..5)
            .map(|id| {
                emu::get_receipt(&mut emu, hub, id)
                    .expect("query")
                    .expect("receipt")
            })
            .collect();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let anchors = emu::anchors(&emu).expect("anchors");
        let trust = dir.join("trust.json");
        std::fs::write(&trust, anchors.to_json()).expect("write");
        let receipts = receipts
            .iter()
            .map(|r| {
                let path = dir.join(format!("record-{}.json", r.record.id));
                std::fs::write(&path, r.to_json()).expect("write");
                path
            })
            .collect();
        Fixture {
            dir,
            trust,
            receipts,
            emulator_time_nanos: emu.time_nanos(),
            root_key_hex: hex::encode(emu.root_key()),
            _tmp: tmp,
        }
    })
}

pub fn receipt(path: &Path) -> Receipt {
    Receipt::from_json(&std::fs::read_to_string(path).expect("read")).expect("receipt")
}

pub fn stratros(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratros"))
        .args(args)
        .output()
        .expect("runs stratros")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
