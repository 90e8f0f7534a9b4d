# Python's exception classes that upstream Snakepit gives a struct of their own, and the fields
# every one of those structs has (upstream's).
mapped = ~w(ValueError KeyError IndexError TypeError AttributeError ImportError RuntimeError
            NotImplementedError FileNotFoundError PermissionError ZeroDivisionError)

fields = [:message, :context, :stacktrace, :python_type, :python_traceback]

defmodule Snakepit.Error.PythonException do
  @moduledoc """
  An exception raised by a worker's Python code, as upstream Snakepit (v0.7.4+) represents it.

  Python's common exception classes have a struct each, with the same fields:
  `Snakepit.Error.ValueError`, `KeyError`, `IndexError`, `TypeError`, `AttributeError`,
  `ImportError`, `RuntimeError`, `NotImplementedError`, `FileNotFoundError`, `PermissionError`
  and `ZeroDivisionError`; any other class (and a non-Python worker's error type) is a
  `Snakepit.Error.PythonException`.

    * `:message` - the exception's text
    * `:python_type` - its class name, e.g. `"ValueError"`
    * `:python_traceback` - the formatted traceback (`nil` when the worker sent none)
    * `:context` - upstream's call-site context; `%{}` here (the bridge sends none)
    * `:stacktrace` - upstream's structured frames; `[]` here (the traceback has them as text)

  A call returns it inside a `%Snakepit.Error{reason: :worker_error}`, in `details.reason`
  (where upstream v0.13's `Snakepit.execute/3` puts it): see `Snakepit.Error`.
  """

  defexception fields

  @type t :: %{
          __struct__: module(),
          __exception__: true,
          message: String.t(),
          context: map(),
          stacktrace: list(),
          python_type: String.t(),
          python_traceback: String.t() | nil
        }

  @modules Map.new(mapped, &{&1, Module.concat(Snakepit.Error, &1)})
  @structs [__MODULE__ | Map.values(@modules)]

  @doc "The exception struct for a Python exception of class `type`: mapped, or this module's."
  @spec new(String.t(), String.t(), String.t() | nil) :: t()
  def new(type, message, traceback) when is_binary(type) and is_binary(message) do
    struct(Map.get(@modules, type, __MODULE__),
      message: message,
      context: %{},
      stacktrace: [],
      python_type: type,
      python_traceback: traceback
    )
  end

  @doc "Whether `term` is a `Snakepit.Error.PythonException` or one of the mapped structs."
  @spec python_exception?(term()) :: boolean()
  def python_exception?(%module{__exception__: true}) when module in @structs, do: true
  def python_exception?(_term), do: false
end

for name <- mapped do
  defmodule Module.concat(Snakepit.Error, name) do
    @moduledoc """
    Python's `#{name}` raised by a worker's code; fields as `Snakepit.Error.PythonException`.
    """
    defexception fields
  end
end
