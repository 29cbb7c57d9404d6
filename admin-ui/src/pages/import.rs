//! The manifest import: a file dropped or picked is checked in the browser first (every
//! row valid or invalid with its reason, before anything is sent); then a server dry
//! run flags devices registered with another key; then the import runs in batches with
//! a progress bar and ends with its summary.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use crate::api::{ApiError, ImportAnswer, ImportSummary, Session};
use crate::manifest_check::{check_manifest, ManifestCheck, RowOutcome, IMPORT_BATCH_ROWS};
use crate::ui::ErrorMessage;

/// Rows listed in the check's table; the counts always cover the whole file.
pub const ROWS_SHOWN: usize = 200;

/// Where the import is.
#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// Nothing chosen yet.
    Idle,
    /// Reading the file.
    Reading,
    /// Checked in the browser; the dry run is under way.
    DryRun,
    /// The dry run answered.
    Reviewed(ImportAnswer),
    /// Importing: batches sent so far, of how many.
    Importing(usize, usize),
    /// Done.
    Done(ImportSummary),
}

/// The import panel of the devices page; `on_imported` runs after a written import.
#[component]
pub fn ImportPanel(
    /// The signed-in session.
    session: Session,
    /// Runs after devices were written (the devices table reloads).
    #[prop(into)]
    on_imported: Callback<()>,
) -> impl IntoView {
    let check = RwSignal::new(None::<ManifestCheck>);
    let stage = RwSignal::new(Stage::Idle);
    let error = RwSignal::new(None::<ApiError>);
    let replace = RwSignal::new(false);
    let dragging = RwSignal::new(false);

    let dry_run = move || {
        let Some(checked) = check.get_untracked() else {
            return;
        };
        if checked.valid() == 0 {
            stage.set(Stage::Idle);
            return;
        }
        stage.set(Stage::DryRun);
        error.set(None);
        let replace = replace.get_untracked();
        spawn_local(async move {
            let csv = checked.valid_csv_batches(usize::MAX).concat();
            match session
                .import(&csv, &checked.file_name, true, replace)
                .await
            {
                Ok(answer) => stage.set(Stage::Reviewed(answer)),
                Err(e) => {
                    stage.set(Stage::Idle);
                    error.set(Some(e));
                }
            }
        });
    };

    let accept_file = move |file: web_sys::File| {
        stage.set(Stage::Reading);
        error.set(None);
        check.set(None);
        spawn_local(async move {
            let name = file.name();
            let bytes = match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                Ok(buffer) => js_sys::Uint8Array::new(&buffer).to_vec(),
                Err(_) => {
                    stage.set(Stage::Idle);
                    error.set(Some(ApiError {
                        status: 0,
                        code: "unreadable_file".into(),
                        message: format!("The browser could not read {name}."),
                    }));
                    return;
                }
            };
            check.set(Some(check_manifest(&name, &bytes)));
            dry_run();
        });
    };

    let run_import = move |_| {
        let Some(checked) = check.get_untracked() else {
            return;
        };
        let batches = checked.valid_csv_batches(IMPORT_BATCH_ROWS);
        let total = batches.len();
        let replace = replace.get_untracked();
        stage.set(Stage::Importing(0, total));
        error.set(None);
        spawn_local(async move {
            let mut summary = ImportSummary::default();
            for (done, batch) in batches.iter().enumerate() {
                match session
                    .import(batch, &checked.file_name, false, replace)
                    .await
                {
                    Ok(answer) if answer.accepted => summary.add(answer.summary),
                    Ok(answer) => {
                        // A device registered meanwhile with another key, say.
                        summary.add(answer.summary);
                        error.set(Some(ApiError {
                            status: 422,
                            code: "import_refused".into(),
                            message: format!(
                                "Batch {} of {total} was refused: {}",
                                done + 1,
                                answer.message.unwrap_or_default()
                            ),
                        }));
                        break;
                    }
                    Err(e) => {
                        error.set(Some(e));
                        break;
                    }
                }
                stage.set(Stage::Importing(done + 1, total));
            }
            if summary.written {
                on_imported.run(());
            }
            stage.set(Stage::Done(summary));
        });
    };

    let on_pick = move |ev: leptos::ev::Event| {
        let input = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
        if let Some(file) = input
            .as_ref()
            .and_then(|i| i.files())
            .and_then(|f| f.get(0))
        {
            accept_file(file);
        }
        // Picking the same file again must fire `change` again.
        if let Some(input) = input {
            input.set_value("");
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        if let Some(file) = ev
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0))
        {
            accept_file(file);
        }
    };

    view! {
        <div class="import">
            <div class="dropzone" class:dragging=move || dragging.get()
                on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); dragging.set(true); }
                on:dragleave=move |_| dragging.set(false)
                on:drop=on_drop>
                <p>"Drop a manufacturer's manifest here (CSV or JSON lines), or "
                    <label class="file-pick">"choose a file"
                        <input type="file" id="manifest-file" accept=".csv,.jsonl,.json,.txt,text/csv" on:change=on_pick/>
                    </label>
                    ". It is checked here before anything is sent."</p>
            </div>
            {move || matches!(stage.get(), Stage::Reading).then(|| view! { <p class="state loading">"Reading the file…"</p> })}
            {move || check.get().map(|c| view! { <CheckReport check=c/> })}
            {move || match stage.get() {
                Stage::Idle | Stage::Reading => ().into_any(),
                Stage::DryRun => view! { <p class="state loading">"Asking the service what the import would do (dry run)…"</p> }.into_any(),
                Stage::Reviewed(answer) => {
                    let conflicts = answer.summary.conflicts;
                    let blocked = move || conflicts > 0 && !replace.get();
                    view! {
                        <div class="dry-run">
                            <h3>"Dry run"</h3>
                            <SummaryCounts summary=answer.summary.clone()/>
                            {(conflicts > 0).then(|| view! {
                                <p class="warning">{format!("{conflicts} devices are registered with another key. Importing would replace their keys; tick the box to allow it.")}</p>
                                <ul class="conflicts">{answer.summary.errors.iter().filter(|e| e.error == "key_conflict").take(20).map(|e| view! {
                                    <li><span class="mono">{e.device_id.clone().unwrap_or_default()}</span>": "{e.message.clone()}</li>
                                }).collect::<Vec<_>>()}</ul>
                                <label><input type="checkbox" prop:checked=move || replace.get()
                                    on:change=move |ev| replace.set(event_target_checked(&ev))/>" Replace the keys of these devices"</label>
                            })}
                            <button class="primary" id="run-import" disabled=blocked on:click=run_import>
                                {move || format!("Import {} valid devices", check.with(|c| c.as_ref().map_or(0, ManifestCheck::valid)))}
                            </button>
                        </div>
                    }.into_any()
                }
                Stage::Importing(done, total) => view! {
                    <div class="progress" role="status">
                        <label for="import-progress">{format!("Importing: batch {done} of {total}")}</label>
                        <progress id="import-progress" max=total.to_string() value=done.to_string()></progress>
                    </div>
                }.into_any(),
                Stage::Done(summary) => view! {
                    <div class="done" role="status">
                        <h3>"Import finished"</h3>
                        <SummaryCounts summary=summary/>
                    </div>
                }.into_any(),
            }}
            {move || error.get().map(|e| view! { <ErrorMessage error=e/> })}
        </div>
    }
}

/// The browser's verdict on each row: counts, then the rows (invalid ones with their
/// reason).
#[component]
pub fn CheckReport(
    /// The checked manifest.
    check: ManifestCheck,
) -> impl IntoView {
    if let Some(reason) = check.refused.clone() {
        return view! {
            <div class="check">
                <h3>{check.file_name.clone()}</h3>
                <div class="state error" role="alert"><strong>"Not importable here"</strong><p class="message">{reason}</p></div>
            </div>
        }
        .into_any();
    }
    let (valid, invalid) = (check.valid(), check.invalid());
    let more = check.rows.len().saturating_sub(ROWS_SHOWN);
    let rows = check
        .rows
        .iter()
        .take(ROWS_SHOWN)
        .map(|row| {
            let (class, verdict, reason) = match &row.outcome {
                RowOutcome::Valid { .. } => ("row-valid", "valid", String::new()),
                RowOutcome::Invalid { code, reason } => {
                    ("row-invalid", "invalid", format!("{reason} ({code})"))
                }
            };
            view! {
                <tr class=class>
                    <td>{row.line.to_string()}</td>
                    <td class="mono">{row.device_id.clone().unwrap_or_default()}</td>
                    <td><span class=format!("badge badge-{verdict}")>{verdict}</span></td>
                    <td class="reason">{reason}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <div class="check">
            <h3>{check.file_name.clone()}</h3>
            <p class="counts">
                <span class="count-valid">{format!("{valid} valid")}</span>", "
                <span class="count-invalid">{format!("{invalid} invalid")}</span>
                {(invalid > 0).then_some(" — invalid rows are not sent")}
                {(check.duplicates > 0).then(|| format!(" ({} repeated rows ignored)", check.duplicates))}
            </p>
            <table class="manifest-rows">
                <thead><tr><th>"Line"</th><th>"Device id"</th><th>"Check"</th><th>"Reason"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            {(more > 0).then(|| view! { <p class="more">{format!("and {more} more rows")}</p> })}
        </div>
    }
    .into_any()
}

/// An import's counts in words.
#[component]
fn SummaryCounts(summary: ImportSummary) -> impl IntoView {
    let written = if summary.written {
        "written"
    } else {
        "nothing written yet"
    };
    view! {
        <ul class="summary">
            <li><strong>{summary.imported.to_string()}</strong>" new"</li>
            <li><strong>{summary.unchanged.to_string()}</strong>" already registered"</li>
            <li><strong>{summary.replaced.to_string()}</strong>" keys replaced"</li>
            <li><strong>{summary.conflicts.to_string()}</strong>" conflicts"</li>
            <li class="written">{written}</li>
        </ul>
    }
}
