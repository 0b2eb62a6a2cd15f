#Requires -Version 5.1
<#
.SYNOPSIS
    Helpers shared by the TestDriver workflow scripts in this folder.

.DESCRIPTION
    Initialize-TestVM.ps1, Install-TestDriver.ps1, New-LiveKernelDump.ps1,
    Remove-TestDriver.ps1 and Invoke-DumpAnalysis.ps1 import this module with

        Import-Module -Name (Join-Path $PSScriptRoot 'TestDriver.Common.psm1') -Force

    and call its functions; each script still runs its own elevation check.
    Compatible with Windows PowerShell 5.1.
#>

# A module has its own session state: set the same preferences the scripts use.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

function Test-Administrator {
    <#
    .SYNOPSIS
        Tells whether the current PowerShell process runs elevated.

    .DESCRIPTION
        Returns $true when the current Windows identity is in the built-in
        Administrators role (WindowsPrincipal.IsInRole), $false otherwise.

    .EXAMPLE
        if (-not (Test-Administrator)) { Write-Warning 'Not elevated.' }

    .OUTPUTS
        System.Boolean
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param()
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object -TypeName Security.Principal.WindowsPrincipal -ArgumentList $identity
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Assert-Administrator {
    <#
    .SYNOPSIS
        Stops the script unless PowerShell runs elevated.

    .DESCRIPTION
        Throws a terminating error that tells the user to run PowerShell with
        "Run as administrator" when Test-Administrator returns $false.

    .EXAMPLE
        Assert-Administrator
    #>
    [CmdletBinding()]
    param()
    if (-not (Test-Administrator)) {
        throw 'This script must run elevated: open PowerShell with "Run as administrator" and run it again.'
    }
}

function Invoke-NativeCommand {
    <#
    .SYNOPSIS
        Runs a native program and returns its exit code and output lines.

    .DESCRIPTION
        Native programs write errors to stderr; with $ErrorActionPreference = 'Stop',
        Windows PowerShell 5.1 would turn every stderr line into a terminating error,
        so the preference is relaxed to 'Continue' while the program runs and restored
        afterwards. stdout and stderr are merged and returned as strings. The caller
        checks ExitCode.

    .PARAMETER FilePath
        The program to run (for example sc.exe, bcdedit.exe, verifier.exe). It must be
        found by Get-Command, otherwise the function throws "<FilePath> was not found on PATH.".

    .PARAMETER ArgumentList
        Arguments passed to the program, one array element per argument.

    .EXAMPLE
        $result = Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList @('query', 'TestDrv')
        if ($result.ExitCode -ne 0) { throw "sc.exe query failed with exit code $($result.ExitCode)." }

    .OUTPUTS
        PSCustomObject with ExitCode (int) and Output (string[]).
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @()
    )
    if (-not (Get-Command -Name $FilePath -ErrorAction SilentlyContinue)) {
        throw "$FilePath was not found on PATH."
    }
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        $lines = & $FilePath @ArgumentList 2>&1 | ForEach-Object { "$_" }
        $code = $LASTEXITCODE
    }
    finally {
        $ErrorActionPreference = $previous
    }
    [pscustomobject]@{
        ExitCode = $code
        Output   = @($lines)
    }
}

function Write-NativeOutput {
    <#
    .SYNOPSIS
        Shows the non-blank output lines of an Invoke-NativeCommand result, indented.

    .PARAMETER Result
        The object returned by Invoke-NativeCommand (its Output property is shown).

    .EXAMPLE
        Write-NativeOutput (Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList @('query', 'TestDrv'))
    #>
    [CmdletBinding()]
    param($Result)
    foreach ($line in $Result.Output) {
        if ($line.Trim().Length -gt 0) {
            Write-Host "    $line"
        }
    }
}

function Resolve-ExistingFile {
    <#
    .SYNOPSIS
        Returns the full path of a file given by the user, or stops if it does not exist.

    .DESCRIPTION
        Throws "<Description> not found: <Path>" when Path is not an existing file,
        otherwise returns its provider path (Resolve-Path).

    .PARAMETER Path
        Path of the file, as the user gave it.

    .PARAMETER Description
        What the file is, used as the start of the error message (for example 'Driver').

    .EXAMPLE
        $driver = Resolve-ExistingFile -Path $DriverPath -Description 'Driver'

    .OUTPUTS
        System.String
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [Parameter(Mandatory)][string]$Path,
        [Parameter(Mandatory)][string]$Description
    )
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
        throw "$Description not found: $Path"
    }
    return (Resolve-Path -LiteralPath $Path).ProviderPath
}

function Restart-ComputerIfRequested {
    <#
    .SYNOPSIS
        Ends a script that changed settings needing a reboot: restarts, or says so.

    .DESCRIPTION
        With -Restart, restarts the computer (Restart-Computer -Force) if the calling
        script's ShouldProcess agrees, so -WhatIf and -Confirm given to the script
        apply. Without -Restart, writes the lines of -Message instead.

    .PARAMETER Cmdlet
        The calling script's $PSCmdlet; its ShouldProcess decides on the restart.

    .PARAMETER Restart
        Restart the computer instead of writing -Message.

    .PARAMETER Message
        Lines written with Write-Host when not restarting (empty strings give blank lines).

    .EXAMPLE
        Restart-ComputerIfRequested -Cmdlet $PSCmdlet -Restart:$Restart -Message 'REBOOT NEEDED: Restart-Computer.'
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][System.Management.Automation.PSCmdlet]$Cmdlet,
        [switch]$Restart,
        [Parameter(Mandatory)][AllowEmptyString()][string[]]$Message
    )
    if ($Restart) {
        if ($Cmdlet.ShouldProcess($env:COMPUTERNAME, 'Restart-Computer')) {
            Restart-Computer -Force
        }
    }
    else {
        foreach ($line in $Message) {
            Write-Host $line
        }
    }
}

# Quoted names: the tree-sitter grammar used by check-ps1-syntax.py rejects a bare-word list.
Export-ModuleMember -Function @(
    'Test-Administrator',
    'Assert-Administrator',
    'Invoke-NativeCommand',
    'Write-NativeOutput',
    'Resolve-ExistingFile',
    'Restart-ComputerIfRequested'
)
