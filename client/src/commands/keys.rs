//! `ipledger keys`: key files are created and read through ipledger-genesis, exactly as the
//! node reads its own (mode 0600, never overwritten, the secret never printed).

use crate::cli::KeysCommand;
use crate::error::{ClientError, Result};
use crate::files::read_key;
use crate::Output;
use ipledger_genesis::KeyFile;
use serde_json::json;

pub(crate) fn run(command: KeysCommand) -> Result<Output> {
    match command {
        KeysCommand::Create { file } => {
            let key = KeyFile::generate().map_err(|error| ClientError::usage(error.to_string()))?;
            key.write(&file)
                .map_err(|error| ClientError::bad_file(&file, error.to_string()))?;
            let public = key.public_key();
            Ok(Output::new(
                vec![
                    format!("created {} (mode 0600); its public key:", file.display()),
                    public.to_string(),
                    "give the public key to the trading center to be enrolled; the key file never leaves this machine".into(),
                ],
                json!({"ok": true, "file": file, "public_key": public}),
            ))
        }
        KeysCommand::Show { file } => {
            let public = read_key(&file)?.public_key();
            Ok(Output::new(
                vec![public.to_string()],
                json!({"ok": true, "file": file, "public_key": public}),
            ))
        }
    }
}
