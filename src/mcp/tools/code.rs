//! Tools that run code or look at a kernel's state: execute_code, get_variables,
//! inspect_variable, install_package.

use crate::mcp::args::Parameters;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResponse, CallToolResult};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::kernel::introspect::{Inspection, Variables};
use crate::mcp::JupyterMcp;
use crate::mcp::answer::InstallPackageOutput;
use crate::mcp::error::{respond, structured};
use crate::mcp::progress;
use crate::service::{CodeRun, ExecuteCodeOutput};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteCodeArgs {
    /// Python source to run, as in a notebook cell. IPython syntax works (%magics, !shell).
    pub code: String,
    /// Kernel name (default "default"). Each name is a separate Python process with its own state.
    pub kernel: Option<String>,
    /// Time limit in seconds (default: the server's --exec-timeout; at most 3600). On expiry the
    /// code is interrupted and what it printed so far is returned.
    pub timeout: Option<f64>,
    /// Seconds to wait for the code to finish (default and maximum: the server's --call-wait,
    /// 40 s unless set). Code still running then goes on: the result says `running` with an
    /// `execution_id` for get_execution.
    pub wait: Option<f64>,
    /// Longest side, in pixels, of images sent back (default and maximum: the server's
    /// --max-image-px). Larger images are downscaled; the original is saved and linked.
    pub max_image_px: Option<u32>,
    /// Also append the code and its outputs as a new cell at the end of this notebook (a
    /// relative .ipynb path; created if missing), so the session can be opened in Jupyter.
    pub notebook: Option<String>,
    /// With `notebook`: the revision (from read_notebook or the last change) the notebook must
    /// still have. Checked before the code runs, and again when the cell is appended; if it
    /// changed, the code does not run (or its cell is not appended) and a conflict says to read
    /// again.
    pub revision: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectVariableArgs {
    /// A variable name or dotted attribute path, e.g. `df` or `df.columns`. Not an expression.
    pub name: String,
    /// Kernel name (default "default").
    pub kernel: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallPackageArgs {
    /// A PyPI requirement: a project name with an optional version specifier, e.g. `requests`,
    /// `numpy==2.1.0`, `pandas>=2,<3`. URLs, paths and pip options are refused.
    pub package: String,
    /// Kernel name (default "default"); the package becomes importable there at once.
    pub kernel: Option<String>,
    /// Seconds to wait for pip (default and maximum: the server's --call-wait, 40 s unless
    /// set). An install still running then goes on: the result says `running` with an
    /// `execution_id` for get_execution.
    pub wait: Option<f64>,
}

#[tool_router(router = code_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// Run Python code in a persistent Jupyter kernel (IPython). Variables, imports and
    /// functions persist between calls on the same kernel. Returns printed output, the value of
    /// the last expression, rich displays (matplotlib plots come back as PNG images) and errors
    /// with tracebacks. Code still running after `wait` seconds goes on in the background: the
    /// result says `running` with an `execution_id` to pass to get_execution. Code that runs past
    /// `timeout` seconds is interrupted. Large output is cut to its start and end. Use
    /// install_package, not pip, to add packages.
    #[tool(
        output_schema = schema_for_output::<ExecuteCodeOutput>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = true)
    )]
    async fn execute_code(
        &self,
        Parameters(args): Parameters<ExecuteCodeArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let wait = args.wait;
        let run = CodeRun {
            code: args.code,
            kernel: args.kernel,
            timeout: args.timeout,
            max_image_px: args.max_image_px,
            notebook: args.notebook,
            revision: args.revision,
        };
        let result = async {
            let call = self.call(&ctx)?;
            let (progress, flush) = progress::forwarder(&ctx).unzip();
            let answer = self.service.start_code(&call, run, wait, progress).await?;
            progress::flush(flush).await;
            Ok(answer)
        };
        self.respond_to(&ctx, result.await)
    }

    /// List the user's variables in a kernel (not modules, not IPython's own names, not names
    /// starting with `_`), each with its type, a short repr, and length/shape/dtype when it has
    /// them.
    #[tool(
        output_schema = schema_for_output::<Variables>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_variables(
        &self,
        Parameters(super::kernels::KernelArgs { kernel }): Parameters<super::kernels::KernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let call = self.call(&ctx)?;
            let variables = self.service.variables(&call, kernel.as_deref()).await?;
            structured(vec![], &variables)
        };
        respond(result.await)
    }

    /// Describe one variable or attribute (`df`, `model.coef_`): type, module, a capped repr,
    /// shape/dtype/columns and the first rows for numpy and pandas objects, and the first line
    /// of its documentation.
    #[tool(
        output_schema = schema_for_output::<Inspection>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn inspect_variable(
        &self,
        Parameters(InspectVariableArgs { name, kernel }): Parameters<InspectVariableArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let call = self.call(&ctx)?;
            let inspection = self
                .service
                .inspect(&call, kernel.as_deref(), &name)
                .await?;
            structured(vec![], &inspection)
        };
        respond(result.await)
    }

    /// Install a package from PyPI (pre-built wheels only) so that it imports in the kernel
    /// without a restart. Returns the installed name and version, or pip's last lines on failure.
    /// An install still running after `wait` seconds goes on: the result says `running` with an
    /// `execution_id` for get_execution.
    #[tool(
        output_schema = schema_for_output::<InstallPackageOutput>(),
        annotations(destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn install_package(
        &self,
        Parameters(a): Parameters<InstallPackageArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let result = async {
            let call = self.call(&ctx)?;
            let kernel = a.kernel.as_deref();
            let answer = self.service.start_install(&call, kernel, a.package, a.wait);
            answer.await
        };
        self.respond_to(&ctx, result.await)
    }
}
