defmodule Snakepit.Script.Options do
  @moduledoc """
  The options of `Snakepit.run_as_script/2`, resolved from the keyword list and the OS
  environment, as upstream Snakepit v0.13 reads them.

  How the VM ends (`exit_mode`), first match wins:

    1. the `:exit_mode` option (`:none`, `:halt`, `:stop` or `:auto`);
    2. `halt: true` (upstream's older option) means `:halt`;
    3. `SNAKEPIT_SCRIPT_EXIT` (`none`, `halt`, `stop`, `auto`; case and surrounding blanks
       ignored; empty means unset; any other value is ignored with a warning);
    4. `SNAKEPIT_SCRIPT_HALT` set to `1`, `true`, `yes`, `y` or `on` means `:halt`;
    5. otherwise `:none`.

  `:auto` becomes `:stop` when the script started Snakepit itself and the VM runs with
  `-no_halt` (it would not end by itself); otherwise `:none`.

  An invalid `:exit_mode`, `:stop_mode`, `:restart` or timeout raises `ArgumentError` naming the
  option and the value. Other keys are ignored, as upstream does.
  """

  @exit_modes [:none, :halt, :stop, :auto]
  @stop_modes [:if_started, :always, :never]
  @truthy ["1", "true", "yes", "y", "on"]

  @typedoc "How the VM ends after the script."
  @type exit_mode :: :none | :halt | :stop | :auto

  @typedoc "What the script stops when it ends."
  @type stop_mode :: :if_started | :always | :never

  @type t :: %{
          exit_mode: exit_mode(),
          stop_mode: stop_mode(),
          timeout: timeout(),
          shutdown_timeout: non_neg_integer(),
          cleanup_timeout: non_neg_integer(),
          restart: :auto | boolean(),
          await_pool: boolean(),
          pool_options: keyword(),
          warnings: [String.t()]
        }

  @doc """
  Resolves `opts` given the OS environment `env` (a map of variable names to values) and the
  `pooling_enabled` setting, which is `:await_pool`'s default (a `:pool_options` option also
  makes it default to `true`).
  """
  @spec resolve!(keyword(), %{optional(String.t()) => String.t()}, boolean()) :: t()
  def resolve!(opts, env, pooling_enabled?) when is_list(opts) and is_map(env) do
    {exit_mode, warnings} = exit_mode!(opts, env)
    pool_options = Keyword.get(opts, :pool_options, [])

    unless Keyword.keyword?(pool_options),
      do: invalid!(:pool_options, pool_options, "a keyword list")

    %{
      exit_mode: exit_mode,
      stop_mode: one_of!(opts, :stop_mode, :if_started, @stop_modes),
      timeout: timeout!(opts, :timeout, 15_000),
      shutdown_timeout: ms!(opts, :shutdown_timeout, 15_000),
      cleanup_timeout: ms!(opts, :cleanup_timeout, 5_000),
      restart: one_of!(opts, :restart, :auto, [:auto, true, false]),
      await_pool:
        boolean!(opts, :await_pool, pooling_enabled? or Keyword.has_key?(opts, :pool_options)),
      pool_options: pool_options,
      warnings: warnings
    }
  end

  @doc """
  The exit mode to apply: `:auto` becomes `:stop` when the script owns Snakepit and the VM
  does not halt by itself (`no_halt?`), `:none` otherwise; other modes stay.
  """
  @spec effective_exit_mode(exit_mode(), boolean(), boolean()) :: :none | :halt | :stop
  def effective_exit_mode(:auto, true = _owned?, true = _no_halt?), do: :stop
  def effective_exit_mode(:auto, _owned?, _no_halt?), do: :none
  def effective_exit_mode(mode, _owned?, _no_halt?), do: mode

  @doc "Whether this VM was started with `-no_halt` (so it does not end when the script does)."
  @spec no_halt?() :: boolean()
  def no_halt?, do: match?({:ok, _}, :init.get_argument(:no_halt))

  defp exit_mode!(opts, env) do
    cond do
      Keyword.has_key?(opts, :exit_mode) ->
        {one_of!(opts, :exit_mode, :none, @exit_modes), []}

      Keyword.get(opts, :halt) == true ->
        {:halt, []}

      true ->
        exit_mode_from_env(env)
    end
  end

  defp exit_mode_from_env(env) do
    legacy = if truthy?(env["SNAKEPIT_SCRIPT_HALT"]), do: :halt, else: :none

    case env |> Map.get("SNAKEPIT_SCRIPT_EXIT", "") |> String.trim() do
      "" ->
        {legacy, []}

      value ->
        case Enum.find(@exit_modes, &(Atom.to_string(&1) == String.downcase(value))) do
          nil ->
            {legacy,
             [
               "SNAKEPIT_SCRIPT_EXIT=#{inspect(value)} is not one of none, halt, stop, auto; " <>
                 "using exit_mode #{legacy}"
             ]}

          mode ->
            {mode, []}
        end
    end
  end

  defp truthy?(nil), do: false
  defp truthy?(value), do: String.downcase(String.trim(value)) in @truthy

  defp one_of!(opts, key, default, allowed) do
    value = Keyword.get(opts, key, default)
    if value in allowed, do: value, else: invalid!(key, value, "one of #{inspect(allowed)}")
  end

  defp boolean!(opts, key, default) do
    value = Keyword.get(opts, key, default)
    if is_boolean(value), do: value, else: invalid!(key, value, "a boolean")
  end

  defp ms!(opts, key, default) do
    value = Keyword.get(opts, key, default)

    if is_integer(value) and value >= 0,
      do: value,
      else: invalid!(key, value, "a non-negative integer (ms)")
  end

  defp timeout!(opts, key, default) do
    case Keyword.get(opts, key, default) do
      :infinity -> :infinity
      _ -> ms!(opts, key, default)
    end
  end

  defp invalid!(key, value, expected) do
    raise ArgumentError,
          "invalid run_as_script option #{inspect(key)}: #{inspect(value)}; expected #{expected}"
  end
end
